// The demo page: draw a digit, send it to the service, show its reconstruction and its place on the
// latent map; click the map to decode a point. Plain DOM and canvas, same-origin requests only.
// The page follows what the service serves: it asks /models again every few seconds and when it gets the
// focus, and updates the model and version choices (and the stable version, if that is the one chosen)
// without a reload of its own, keeping the drawing.
// State the tests read is mirrored into data- attributes (data-state, data-drawn, data-latent, ...).
"use strict";

const SIDE = 28; // MNIST images are 28 x 28
const COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
  "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]; // matplotlib's tab10, as on /latent-map?format=png
const STROKE = 22; // pen width on the 280 px canvas: about MNIST's stroke once scaled into 20 x 20
const JSON_HEADERS = { "Content-Type": "application/json" };
const POLL_MS = Number(window.DEMO_POLL_MS) || 5000; // how often /models is asked again (a test may set it first)

const $ = (id) => document.getElementById(id);
const ui = {
  controls: $("controls"), model: $("model"), version: $("version"), key: $("api-key"), info: $("model-info"),
  versions: $("versions"), notice: $("notice"), error: $("error"), drawing: $("drawing"), clear: $("clear"),
  digits: $("digits"), recon: $("reconstruction"), mse: $("mse"), map: $("map"), legend: $("legend"),
  caption: $("map-caption"), note: $("decode-note"), decoded: $("decoded"), decodedCaption: $("decoded-caption"),
};
const state = {
  models: [],
  listed: null, // what /models last said of each model's versions and aliases, to see what changed
  follow: true, // the version choice follows the stable version, until the user picks one
  polling: false,
  pollError: null, // the error a poll showed, cleared by the next poll that succeeds
  map: null, // {points, projection, view, background} for the chosen model version
  source: null, // null: blank; "drawing": strokes (sent as PNG); {label, index, pixels}: an untouched test digit
  drawn: null, // the drawing's position on the map {x, y}
  picked: null, // the decoded point [x, y]
  cursor: null, // the keyboard's point on the map [x, y]
  seq: { analyse: 0, map: 0, decode: 0 }, // answers to superseded requests are dropped
};

// ------------------------------------------------------------------------------ service calls

async function api(path, init = {}) {
  const headers = new Headers(init.headers);
  const key = ui.key.value.trim();
  if (key) headers.set("Authorization", `Bearer ${key}`);
  const endpoint = path.split("?")[0];
  let response;
  try {
    response = await fetch(path, { ...init, headers });
  } catch (err) {
    throw new Error(`Could not reach the service for /${endpoint}: ${err.message}`);
  }
  const text = await response.text();
  let body = null;
  try { body = JSON.parse(text); } catch { /* not JSON: reported below */ }
  if (!response.ok) {
    const error = (body && body.error) || {};
    let message = error.message || text.slice(0, 200) || response.statusText;
    const choices = error.available || error.available_versions;
    if (choices) message += ` (available: ${choices.join(", ")})`;
    if (response.status === 401) message += ". Enter the service's API key above.";
    if (response.status === 503) message += ". The service is busy or starting: try again in a moment.";
    throw new Error(`/${endpoint} answered ${response.status}: ${message}`);
  }
  if (body === null) throw new Error(`/${endpoint} answered something that is not JSON`);
  const answered = response.headers.get("X-Model-Version"); // on every inference answer
  if (answered) showAnswered(response.headers.get("X-Model"), answered);
  return body;
}

function query(extra = {}) {
  return new URLSearchParams({ model: ui.model.value, version: ui.version.value, ...extra }).toString();
}

function showError(err) {
  ui.error.textContent = err.message || String(err);
  ui.error.hidden = false;
}

function clearError() {
  ui.error.hidden = true;
  ui.error.textContent = "";
}

// ------------------------------------------------------------------------------ pixels

function paintPixels(canvas, values) { // 784 values in [0, 1] onto a 28 x 28 canvas, white on black
  const context = canvas.getContext("2d");
  const image = context.createImageData(SIDE, SIDE);
  values.forEach((value, i) => {
    const grey = Math.round(Math.min(1, Math.max(0, value)) * 255);
    image.data.set([grey, grey, grey, 255], 4 * i);
  });
  context.putImageData(image, 0, 0);
}

function blank(canvas) {
  const context = canvas.getContext("2d");
  context.fillStyle = "#000";
  context.fillRect(0, 0, canvas.width, canvas.height);
  canvas.dataset.state = "empty";
}

// ------------------------------------------------------------------------------ the drawing

function setupDrawing() {
  const context = ui.drawing.getContext("2d");
  let last = null;
  const at = (event) => {
    const box = ui.drawing.getBoundingClientRect();
    return [(event.clientX - box.left) * ui.drawing.width / box.width,
      (event.clientY - box.top) * ui.drawing.height / box.height];
  };
  const line = (to) => {
    Object.assign(context, { strokeStyle: "#fff", lineWidth: STROKE, lineCap: "round", lineJoin: "round" });
    context.beginPath();
    context.moveTo(...last);
    context.lineTo(...to);
    context.stroke();
    last = to;
  };
  ui.drawing.addEventListener("pointerdown", (event) => {
    event.preventDefault();
    ui.drawing.setPointerCapture(event.pointerId);
    last = at(event);
    context.fillStyle = "#fff"; // a tap leaves a dot
    context.beginPath();
    context.arc(...last, STROKE / 2, 0, 2 * Math.PI);
    context.fill();
    setSource("drawing");
  });
  ui.drawing.addEventListener("pointermove", (event) => { if (last) line(at(event)); });
  const end = () => {
    if (!last) return;
    last = null;
    analyse();
  };
  ui.drawing.addEventListener("pointerup", end);
  ui.drawing.addEventListener("pointercancel", end);
}

function setSource(source) {
  state.source = source;
  ui.drawing.dataset.source = source === null ? "empty" : source === "drawing" ? "drawing" : `test-${source.label}`;
}

function clearAll() {
  state.seq.analyse += 1; // answers still on their way are for a drawing that is gone
  blank(ui.drawing);
  blank(ui.recon);
  setSource(null);
  state.drawn = null;
  ui.mse.textContent = "Draw something to see it rebuilt from its latent vector.";
  delete ui.mse.dataset.mse;
  renderMap();
}

async function drawingBody() { // an untouched test digit goes as its exact pixels, a drawing as a PNG
  if (state.source && state.source.pixels) {
    const images = [Array.from(state.source.pixels, (v) => v / 255)];
    return () => ({ headers: JSON_HEADERS, body: JSON.stringify({ images }) });
  }
  const png = await new Promise((resolve) => ui.drawing.toBlob(resolve, "image/png"));
  return () => {
    const form = new FormData();
    form.append("file", png, "drawing.png");
    return { body: form };
  };
}

async function analyse() { // reconstruction, MSE and the place on the map, for the current drawing
  if (!state.source || !state.map) return;
  const seq = ++state.seq.analyse;
  ui.recon.dataset.state = "pending";
  try {
    const body = await drawingBody();
    const [rebuilt, placed] = await Promise.all([
      api(`reconstruct?${query()}`, { method: "POST", ...body() }),
      api(`latent-map?${query({ limit: 1 })}`, { method: "POST", ...body() }),
    ]);
    if (seq !== state.seq.analyse) return;
    paintPixels(ui.recon, rebuilt.reconstructions[0]);
    ui.recon.dataset.state = "ready";
    ui.mse.dataset.mse = rebuilt.mse[0];
    ui.mse.textContent =
      `MSE ${rebuilt.mse[0].toFixed(4)} (mean squared error per pixel, ${rebuilt.model} v${rebuilt.version})`;
    state.drawn = placed.positions[0];
    renderMap();
    clearError();
  } catch (err) {
    if (seq !== state.seq.analyse) return;
    ui.recon.dataset.state = "error";
    showError(err);
  }
}

// ------------------------------------------------------------------------------ the latent map

function viewOf(points, size) { // the same scale on both axes, the points' box centred with a margin
  const xs = points.map((p) => p.x), ys = points.map((p) => p.y);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const scale = (size * 0.92) / Math.max(x1 - x0, y1 - y0, 1e-6);
  const [cx, cy] = [(x0 + x1) / 2, (y0 + y1) / 2];
  return {
    scale, step: 8 / scale, // the keyboard moves 8 px a press
    toCanvas: (x, y) => [size / 2 + (x - cx) * scale, size / 2 - (y - cy) * scale],
    toLatent: (px, py) => [cx + (px - size / 2) / scale, cy - (py - size / 2) / scale],
  };
}

function drawBackground(points, projection, view) { // the scatter, drawn once per map and reused
  const size = ui.map.width;
  const canvas = Object.assign(document.createElement("canvas"), { width: size, height: size });
  const context = canvas.getContext("2d");
  context.fillStyle = "#fff";
  context.fillRect(0, 0, size, size);
  const [ox, oy] = view.toCanvas(0, 0);
  context.strokeStyle = "#d0d7de";
  context.beginPath();
  context.moveTo(ox, 0); context.lineTo(ox, size); context.moveTo(0, oy); context.lineTo(size, oy);
  context.stroke();
  context.globalAlpha = 0.7;
  for (const point of points) {
    const [x, y] = view.toCanvas(point.x, point.y);
    context.fillStyle = COLOURS[point.label];
    context.fillRect(x - 2, y - 2, 4, 4);
  }
  context.globalAlpha = 1;
  context.fillStyle = "#57606a";
  context.font = "16px system-ui, sans-serif";
  const [xName, yName] = projection === "identity" ? ["z1", "z2"] : ["PCA 1", "PCA 2"];
  context.textAlign = "right";
  context.fillText(`${xName} →`, size - 8, size - 8);
  context.textAlign = "left";
  context.fillText(`↑ ${yName}`, 8, 20);
  return canvas;
}

function star(context, x, y, radius) {
  context.beginPath();
  for (let i = 0; i < 10; i += 1) {
    const r = i % 2 ? radius * 0.45 : radius, angle = (Math.PI / 5) * i - Math.PI / 2;
    context.lineTo(x + r * Math.cos(angle), y + r * Math.sin(angle));
  }
  context.closePath();
  Object.assign(context, { fillStyle: "#fff", strokeStyle: "#000", lineWidth: 3 });
  context.fill();
  context.stroke();
}

function ring(context, [x, y], colour) {
  Object.assign(context, { strokeStyle: colour, lineWidth: 3 });
  context.beginPath();
  context.arc(x, y, 9, 0, 2 * Math.PI);
  context.moveTo(x - 14, y); context.lineTo(x + 14, y); context.moveTo(x, y - 14); context.lineTo(x, y + 14);
  context.stroke();
}

function renderMap() {
  const context = ui.map.getContext("2d");
  const size = ui.map.width;
  const clamp = (v) => Math.min(size - 12, Math.max(12, v)); // a point off the map is shown at its edge
  if (!state.map) {
    context.fillStyle = "#fff";
    context.fillRect(0, 0, size, size);
    return;
  }
  const { view } = state.map;
  context.drawImage(state.map.background, 0, 0);
  if (state.picked) ring(context, view.toCanvas(...state.picked), "#000");
  if (state.cursor && ui.map.matches(":focus-visible")) ring(context, view.toCanvas(...state.cursor), "#d97706");
  if (state.drawn) {
    const [x, y] = view.toCanvas(state.drawn.x, state.drawn.y);
    star(context, clamp(x), clamp(y), 18);
    ui.map.dataset.drawn = `${state.drawn.x},${state.drawn.y}`;
  } else {
    delete ui.map.dataset.drawn;
  }
}

async function loadMap() {
  const seq = ++state.seq.map;
  state.seq.analyse += 1; // answers on their way are for the previous model version
  state.seq.decode += 1;
  state.map = null;
  state.drawn = state.picked = state.cursor = null;
  blank(ui.decoded);
  ui.decodedCaption.textContent = "Click the map to decode a point.";
  Object.assign(ui.map.dataset, { state: "loading", points: "0" });
  ui.caption.textContent = "Loading the map…";
  renderMap();
  try {
    const map = await api(`latent-map?${query()}`);
    if (seq !== state.seq.map) return;
    const view = viewOf(map.points, ui.map.width);
    state.map = { ...map, view, background: drawBackground(map.points, map.projection, view) };
    Object.assign(ui.map.dataset, { state: "ready", points: map.points.length, projection: map.projection,
      model: `${map.model} v${map.version}` });
    ui.note.hidden = map.projection === "identity";
    clearError();
    ui.caption.textContent = `${map.points.length} test digits as ${map.model} v${map.version} encodes them` +
      (map.projection === "identity" ? " (the map is the 2-D latent space itself)." : " (a PCA projection).");
    renderMap();
    analyse();
  } catch (err) {
    if (seq !== state.seq.map) return;
    ui.map.dataset.state = "error";
    ui.caption.textContent = "No map.";
    showError(err);
  }
}

async function decodeAt(point) {
  if (!state.map) return;
  if (state.map.projection !== "identity") {
    ui.decodedCaption.textContent = "This model's map cannot be decoded: see the note above.";
    return;
  }
  state.picked = state.cursor = point; // the keyboard carries on from the decoded point
  renderMap();
  const seq = ++state.seq.decode;
  try {
    const out = await api(`decode?${query()}`, { method: "POST", headers: JSON_HEADERS,
      body: JSON.stringify({ latents: [point] }) });
    if (seq !== state.seq.decode) return;
    paintPixels(ui.decoded, out.images[0]);
    Object.assign(ui.decoded.dataset, { state: "ready", latent: point.join(",") });
    ui.decodedCaption.textContent = `Decoded from z = (${point.map((v) => v.toFixed(2)).join(", ")}).`;
    clearError();
  } catch (err) {
    if (seq === state.seq.decode) showError(err);
  }
}

function startCursor() { // the keyboard starts at the decoded point, or the middle of the map
  if (!state.cursor) state.cursor = state.picked || state.map.view.toLatent(ui.map.width / 2, ui.map.width / 2);
}

function setupMap() {
  ui.map.addEventListener("click", (event) => {
    if (!state.map) return;
    const box = ui.map.getBoundingClientRect();
    const scale = ui.map.width / box.width;
    decodeAt(state.map.view.toLatent((event.clientX - box.left) * scale, (event.clientY - box.top) * scale));
  });
  const moves = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, 1], ArrowDown: [0, -1] };
  ui.map.addEventListener("keydown", (event) => {
    if (!state.map) return;
    startCursor();
    if (moves[event.key]) {
      const step = state.map.view.step * (event.shiftKey ? 5 : 1);
      state.cursor = state.cursor.map((v, i) => v + moves[event.key][i] * step);
    } else if (event.key === "Enter" || event.key === " ") {
      decodeAt(state.cursor);
    } else {
      return;
    }
    event.preventDefault();
    renderMap();
  });
  ui.map.addEventListener("focus", () => {
    if (state.map) startCursor();
    renderMap();
  });
  ui.map.addEventListener("blur", renderMap);
  ui.legend.replaceChildren(...COLOURS.map((colour, digit) => legendItem(String(digit), "", colour)),
    legendItem("your digit", "☆ ", "#000", "you"), legendItem("decoded point", "⊕ ", "#000", "you"));
}

function legendItem(text, symbol, colour, kind = "") {
  const item = document.createElement("li");
  const mark = Object.assign(document.createElement("span"), { className: kind, textContent: symbol });
  mark.setAttribute("aria-hidden", "true");
  if (kind) mark.style.color = colour; else mark.style.background = colour;
  item.append(mark, text);
  return item;
}

// ------------------------------------------------------------------------------ models and test digits

async function loadModels() { // at the start, and with a new API key
  try {
    const listing = await api("models");
    const url = new URLSearchParams(location.search); // /demo?model=...&version=... picks, for tutorials
    const [model, version] = ui.model.value ? [ui.model.value, ui.version.value]
      : [url.get("model"), url.get("version")]; // a new key keeps the choice made
    if (!ui.model.value) state.follow = !version; // a version picked by the link stays picked
    takeListing(listing);
    fillModels([model, listing.default_model]);
    fillVersions(version);
    clearError();
    await loadMap();
  } catch (err) {
    showError(err);
  }
}

async function pollModels() { // what the service serves now: new versions, moved aliases, models gone
  if (state.polling || document.visibilityState === "hidden") return;
  state.polling = true;
  try {
    if (!state.listed) { // nothing shown yet (no service, or no key at the start): from the start
      await loadModels();
      return;
    }
    const listing = await api("models");
    if (ui.error.textContent === state.pollError) clearError(); // the last poll's failure is over
    if (takeListing(listing)) followListing(listing);
  } catch (err) {
    showError(err);
    state.pollError = ui.error.textContent;
  } finally {
    state.polling = false;
  }
}

function takeListing(listing) { // true if the models, their versions or their aliases changed
  const listed = JSON.stringify(listing.models.map((m) => [m.name, m.versions, m.stable, m.latest]));
  const changed = listed !== state.listed;
  state.listed = listed;
  state.models = listing.models;
  return changed;
}

function followListing(listing) { // keep the user's choices where they still exist; reload the map if it moved
  const [model, version] = [ui.model.value, ui.version.value];
  fillModels([model, listing.default_model]);
  const served = state.models.find((m) => m.name === model);
  if (!served) { // kept selected, marked gone: the drawing and the map stay until another model is chosen
    showNotice(`Model ${model} is no longer served. Choose another model.`);
    return;
  }
  if (!state.follow && !served.versions.includes(Number(version))) {
    showNotice(`Version ${version} of ${model} is no longer served: showing the stable version, v${served.stable}.`);
    state.follow = true;
  } else {
    showNotice(null);
  }
  fillVersions(state.follow ? null : version);
  if (ui.version.value !== version) loadMap(); // the drawing goes to the version now chosen
}

function fillModels(wanted) { // the served models, the first of `wanted` that is served chosen
  const names = state.models.map((m) => m.name);
  const options = state.models.map((m) => new Option(`${m.name} (p = ${m.latent_size})`, m.name));
  const gone = ui.model.value && !names.includes(ui.model.value) ? ui.model.value : null;
  if (gone) options.push(Object.assign(new Option(`${gone} (no longer served)`, gone), { disabled: true }));
  ui.model.replaceChildren(...options);
  ui.model.value = gone || [...wanted, names[0]].find((n) => names.includes(n));
}

function fillVersions(wanted = null) { // numbered versions; without a served `wanted`, the stable one
  const model = state.models.find((m) => m.name === ui.model.value);
  if (!model) return;
  const label = (v) => {
    const aliases = [v === model.stable && "stable", v === model.latest && "latest"].filter(Boolean);
    return aliases.length ? `v${v} (${aliases.join(", ")})` : `v${v}`;
  };
  ui.version.replaceChildren(...model.versions.map((v) => new Option(label(v), String(v))));
  ui.version.value = model.versions.includes(Number(wanted)) ? String(wanted) : String(model.stable);
  const mse = model.metrics && model.metrics.test_mse;
  ui.info.textContent = `v${model.stable}: ${model.parameters ?? "?"} parameters` +
    (mse ? `, test MSE ${mse.toFixed(4)}` : "");
  Object.assign(ui.versions.dataset, { model: model.name, stable: model.stable, latest: model.latest });
  renderVersions();
}

function showAnswered(model, version) {
  Object.assign(ui.versions.dataset, { answered: `${model} v${version}` });
  renderVersions();
}

function renderVersions() { // the chosen model's aliases, and which version answered last
  const { model, stable, latest, answered } = ui.versions.dataset;
  ui.versions.textContent = model ? `${model}: stable v${stable}, latest v${latest}` +
    (answered ? `; last answer from ${answered}` : "") : "";
}

function showNotice(text) {
  ui.notice.hidden = !text;
  ui.notice.textContent = text || "";
}

async function loadDigits() {
  try {
    const { digits } = await api("demo/digits.json");
    ui.digits.replaceChildren(...digits.map((digit) => {
      const pixels = Uint8Array.from(atob(digit.pixels), (c) => c.charCodeAt(0));
      const button = Object.assign(document.createElement("button"), { type: "button" });
      button.setAttribute("aria-label", `Load test digit ${digit.label} (test image ${digit.index})`);
      const canvas = Object.assign(document.createElement("canvas"), { width: SIDE, height: SIDE });
      paintPixels(canvas, Array.from(pixels, (v) => v / 255));
      button.append(canvas);
      button.addEventListener("click", () => loadDigit({ ...digit, pixels }, canvas));
      return button;
    }));
  } catch (err) {
    showError(err);
  }
}

function loadDigit(digit, thumbnail) { // drawn large into the canvas; sent as its exact pixels until drawn on
  const context = ui.drawing.getContext("2d");
  context.imageSmoothingEnabled = false;
  context.drawImage(thumbnail, 0, 0, ui.drawing.width, ui.drawing.height);
  setSource(digit);
  analyse();
}

function main() {
  blank(ui.drawing);
  blank(ui.recon);
  blank(ui.decoded);
  setupDrawing();
  setupMap();
  ui.clear.addEventListener("click", clearAll);
  ui.model.addEventListener("change", () => {
    state.follow = true; // another model: its stable version
    showNotice(null);
    fillModels([ui.model.value]); // without a model marked gone
    fillVersions();
    loadMap();
  });
  ui.version.addEventListener("change", () => {
    state.follow = false; // a version picked stays picked while it is served
    showNotice(null);
    loadMap();
  });
  ui.key.addEventListener("change", loadModels);
  ui.controls.addEventListener("submit", (event) => event.preventDefault()); // Enter in the key field: "change"
  pollModels(); // the first time, it loads the models and the map
  loadDigits();
  setInterval(pollModels, POLL_MS);
  window.addEventListener("focus", pollModels);
  document.addEventListener("visibilitychange", pollModels);
}

main();
