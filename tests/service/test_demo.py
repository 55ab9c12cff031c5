"""The demo page (/demo) and the API documentation (/docs, /redoc): what is served, and the pages in a real browser.

The browser tests drive Debian's chromium (/usr/bin/chromium, which .ci/run installs) with
Playwright against a live uvicorn on loopback; they skip where that browser is missing, except
in CI, where they fail. They read the page's state from its data- attributes, and check what it
shows against what the service answers for the same input. Screenshots go to each test's tmp_path; with
AE_UPDATE_SCREENSHOT=1 the screenshot test rewrites docs/demo.png from the shipped checkpoints.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from liveserver import REPO, live_server

from bench.reload import publish_copy
from models import CheckpointStore
from service.app import create_app
from service.routes import docs
from service.routes.demo import ASSETS, STATIC
from service.settings import Settings
from training.data import ImageData

pytestmark = pytest.mark.slow  # live servers, browsers, benchmark or long training runs: make test-fast skips them

try:
    from playwright.sync_api import Browser, Page, Route, expect, sync_playwright
except ImportError:  # the plain tests still run
    sync_playwright = None

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]  # fmt: skip
WAIT_MS = 30_000  # for any one thing to appear on a busy machine
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


# ---------------------------------------------------------------------------- served files


def test_demo_page_and_files_are_served_with_their_types(client: TestClient) -> None:
    page = client.get("/demo")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert '<canvas id="drawing"' in page.text
    types = {"demo.css": "text/css; charset=utf-8", "demo.js": "text/javascript; charset=utf-8",
             "digits.json": "application/json"}  # fmt: skip
    for name, content_type in types.items():
        response = client.get(f"/demo/{name}")
        assert response.status_code == 200, name
        assert response.headers["content-type"] == content_type
        assert response.content == (STATIC / name).read_bytes()
    for name in ("index.html", "nope.js"):
        missing = client.get(f"/demo/{name}")
        assert missing.status_code == 404
        assert missing.json()["error"]["available"] == sorted(ASSETS)
    assert client.get("/demo/%2e%2e%2fapp.py").status_code == 404
    assert not [path for path in client.get("/openapi.json").json()["paths"] if path.startswith("/demo")]


def test_demo_page_refers_to_nothing_outside_the_service() -> None:
    for path in STATIC.iterdir():
        text = path.read_text()
        assert not re.search(r"https?://|url\(|@import", text), path.name
    html = (STATIC / "index.html").read_text()
    references = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert sorted(references) == ["data:,", "demo/demo.css", "demo/demo.js"]
    assert "default-src 'self'" in html  # the browser itself refuses anything from elsewhere


def test_demo_page_needs_no_key_but_its_api_calls_do(configure: Callable[..., Settings]) -> None:
    with TestClient(create_app(configure(api_key="s3cret"))) as client:
        assert client.get("/demo").status_code == 200
        assert client.get("/demo/demo.js").status_code == 200
        assert client.get("/models").status_code == 401
        assert client.get("/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_test_digits_are_the_first_of_each_class_in_the_mnist_test_set(mnist: ImageData) -> None:
    """digits.json was made from the real test set; this checks it still is exactly that."""
    digits = json.loads((STATIC / "digits.json").read_text())["digits"]
    labels = mnist.test_labels.numpy()
    assert [digit["label"] for digit in digits] == list(range(10))
    for digit in digits:
        assert digit["index"] == int(np.flatnonzero(labels == digit["label"])[0])
        pixels = np.frombuffer(base64.b64decode(digit["pixels"]), np.uint8)
        np.testing.assert_array_equal(pixels, np.rint(mnist.test_images[digit["index"]].numpy() * 255))


# ---------------------------------------------------------------------------- a live server and a browser


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, store_root: Path) -> Iterator[str]:
    with live_server(tmp_path_factory.mktemp("demo"), store_root, default_model="mlp2-p2") as live:
        yield live.url


@pytest.fixture(scope="module")
def http(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=30, trust_env=False) as client:
        yield client


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if sync_playwright is None or not CHROMIUM.exists():
        # Never skipped: `make test` installs chromium (scripts/system-deps.sh) and playwright ([dev]).
        pytest.fail(f"needs the playwright package and Debian's chromium at {CHROMIUM}: run `make test`")
    expect.set_options(timeout=WAIT_MS)  # every expect(...) below waits this long
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@contextmanager
def open_demo(browser: Browser, url: str, ready: bool = True, before: str = "", **context: Any) -> Iterator[Page]:
    """The demo page, its map loaded (if `ready`); afterwards, no uncaught script error and no request elsewhere.

    `before`: a script run in the page before its own (to set window.DEMO_POLL_MS, say).
    """
    session = browser.new_context(**{"viewport": DESKTOP, **context})
    if before:
        session.add_init_script(before)
    page = session.new_page()
    page.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    requests: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("request", lambda request: requests.append(request.url))
    try:
        page.goto(f"{url}/demo")
        if ready:
            expect(page.locator("#map")).to_have_attribute("data-state", "ready")
        yield page
        assert errors == []
        assert [r for r in requests if not r.startswith(f"{url}/") and not r.startswith("data:")] == []
    finally:
        session.close()


@pytest.fixture
def page(browser: Browser, server: str) -> Iterator[Page]:
    with open_demo(browser, server) as opened:
        yield opened


def draw(page: Page, *strokes: list[tuple[float, float]]) -> None:
    """Mouse strokes on the drawing, in the canvas's own 280 x 280 units."""
    box = page.locator("#drawing").bounding_box()
    assert box is not None
    scale = box["width"] / 280
    for stroke in strokes:
        (x, y), rest = stroke[0], stroke[1:]
        page.mouse.move(box["x"] + x * scale, box["y"] + y * scale)
        page.mouse.down()
        for x, y in rest:
            page.mouse.move(box["x"] + x * scale, box["y"] + y * scale, steps=5)
        page.mouse.up()


A_SEVEN = ([(70, 60), (210, 60), (130, 230)], [(100, 140), (180, 140)])


def canvas_pixels(page: Page, selector: str) -> np.ndarray:
    """A 28 x 28 canvas's grey levels (its red channel), 0-255."""
    values = page.evaluate(
        "(s) => Array.from(document.querySelector(s).getContext('2d').getImageData(0, 0, 28, 28).data)"
        ".filter((_, i) => i % 4 === 0)",
        selector,
    )
    return np.asarray(values, np.int64)


def ink(page: Page) -> int:
    """Pixels of the 280 x 280 drawing that are more white than black."""
    return int(
        page.evaluate(
            "Array.from(document.getElementById('drawing').getContext('2d').getImageData(0, 0, 280, 280).data)"
            ".filter((v, i) => i % 4 === 0 && v > 128).length"
        )
    )


def drawing_png(page: Page) -> bytes:
    url = page.evaluate("document.getElementById('drawing').toDataURL('image/png')")
    return base64.b64decode(url.split(",")[1])


def wait_for_analysis(page: Page) -> None:
    expect(page.locator("#reconstruction")).to_have_attribute("data-state", "ready")
    expect(page.locator("#map")).to_have_attribute("data-drawn", re.compile(r"^-?[\d.e-]+,-?[\d.e-]+$"))


# ---------------------------------------------------------------------------- the page in a browser


def test_a_drawing_is_reconstructed_placed_on_the_map_and_the_map_decodes(
    page: Page, http: httpx.Client, tmp_path: Path
) -> None:
    options = page.locator("#model option")
    assert options.evaluate_all("os => os.map(o => o.value)") == ["mlp2-p2", "mlp2-p8"]  # the broken mlp1-p2 is not
    assert (page.input_value("#model"), page.input_value("#version")) == ("mlp2-p2", "2")
    expect(page.locator("#decode-note")).to_be_hidden()

    draw(page, *A_SEVEN)
    wait_for_analysis(page)
    # what the page shows is what the service answers for the same drawing
    png = {"files": [("file", ("drawing.png", drawing_png(page), "image/png"))]}
    reply = http.post("/reconstruct?model=mlp2-p2&version=2", **png).json()
    assert float(page.get_attribute("#mse", "data-mse") or "nan") == pytest.approx(reply["mse"][0], rel=1e-6)
    expect(page.locator("#mse")).to_contain_text(f"MSE {reply['mse'][0]:.4f}")
    shown = canvas_pixels(page, "#reconstruction")
    assert np.abs(shown - np.rint(np.asarray(reply["reconstructions"][0]) * 255)).max() <= 1
    position = http.post("/latent-map?model=mlp2-p2&version=2&limit=1", **png).json()["positions"][0]
    drawn = [float(v) for v in (page.get_attribute("#map", "data-drawn") or "").split(",")]
    assert drawn == pytest.approx([position["x"], position["y"]], abs=1e-4)

    # a click in the middle of the map decodes the middle of the test points' box
    points = http.get("/latent-map?model=mlp2-p2&version=2").json()["points"]
    assert page.get_attribute("#map", "data-points") == str(len(points))
    xs, ys = [p["x"] for p in points], [p["y"] for p in points]
    centre = [(min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2]
    box = page.locator("#map").bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    expect(page.locator("#decoded")).to_have_attribute("data-state", "ready")
    latent = [float(v) for v in (page.get_attribute("#decoded", "data-latent") or "").split(",")]
    pixel = max(max(xs) - min(xs), max(ys) - min(ys)) / (0.92 * box["width"])  # one screen pixel in latent units
    assert latent == pytest.approx(centre, abs=2 * pixel)
    decoded = http.post("/decode?model=mlp2-p2&version=2", json={"latents": [latent]}).json()["images"][0]
    assert np.abs(canvas_pixels(page, "#decoded") - np.rint(np.asarray(decoded) * 255)).max() <= 1
    expect(page.locator("#decoded-caption")).to_contain_text("Decoded from z = (")
    page.screenshot(path=tmp_path / "desktop.png", full_page=True)


def test_a_p8_model_shows_its_pca_map_and_says_why_it_cannot_decode(
    page: Page, http: httpx.Client, server: str
) -> None:
    draw(page, *A_SEVEN)
    wait_for_analysis(page)
    page.select_option("#model", "mlp2-p8")
    expect(page.locator("#map")).to_have_attribute("data-model", "mlp2-p8 v1")
    expect(page.locator("#map")).to_have_attribute("data-projection", "pca")
    assert page.locator("#version option").evaluate_all("os => os.map(o => o.value)") == ["1"]
    expect(page.locator("#decode-note")).to_be_visible()
    # the drawing is sent again to the new model: its place on the PCA map, and its reconstruction
    wait_for_analysis(page)
    expect(page.locator("#mse")).to_contain_text("mlp2-p8 v1")
    png = {"files": [("file", ("drawing.png", drawing_png(page), "image/png"))]}
    position = http.post("/latent-map?model=mlp2-p8&limit=1", **png).json()["positions"][0]
    drawn = [float(v) for v in (page.get_attribute("#map", "data-drawn") or "").split(",")]
    assert drawn == pytest.approx([position["x"], position["y"]], abs=1e-4)

    page.locator("#map").click()
    expect(page.locator("#decoded-caption")).to_contain_text("cannot be decoded")
    assert page.get_attribute("#decoded", "data-state") == "empty"

    page.select_option("#model", "mlp2-p2")
    expect(page.locator("#map")).to_have_attribute("data-model", "mlp2-p2 v2")
    expect(page.locator("#decode-note")).to_be_hidden()
    page.select_option("#version", "1")
    expect(page.locator("#map")).to_have_attribute("data-model", "mlp2-p2 v1")
    wait_for_analysis(page)
    expect(page.locator("#mse")).to_contain_text("mlp2-p2 v1")

    page.goto(f"{server}/demo?model=mlp2-p8")  # a link can pick the model, for tutorials
    expect(page.locator("#map")).to_have_attribute("data-model", "mlp2-p8 v1")


def test_a_test_digit_loads_into_the_drawing_and_is_sent_as_its_exact_pixels(
    page: Page, http: httpx.Client, mnist: ImageData
) -> None:
    buttons = page.locator("#digits button")
    expect(buttons).to_have_count(10)
    page.get_by_role("button", name=re.compile(r"^Load test digit 7 ")).click()
    expect(page.locator("#drawing")).to_have_attribute("data-source", "test-7")
    wait_for_analysis(page)
    index = json.loads((STATIC / "digits.json").read_text())["digits"][7]["index"]
    image = mnist.test_images[index].numpy()
    reply = http.post("/reconstruct?model=mlp2-p2&version=2", json={"images": [image.tolist()]}).json()
    assert float(page.get_attribute("#mse", "data-mse") or "nan") == pytest.approx(reply["mse"][0], rel=1e-5)
    # a stroke on top makes it a drawing again, sent as a PNG
    exact = page.get_attribute("#mse", "data-mse") or ""
    draw(page, [(20, 20), (60, 20)])
    expect(page.locator("#drawing")).to_have_attribute("data-source", "drawing")
    expect(page.locator("#mse")).not_to_have_attribute("data-mse", exact)


def test_service_errors_are_shown_in_words(page: Page) -> None:
    alert = page.get_by_role("alert")
    expect(alert).to_be_hidden()
    # a version the service does not have: its own 404 message
    page.evaluate("""() => {
        const select = document.getElementById('version');
        select.add(new Option('v99', '99'));
        select.value = '99';
        select.dispatchEvent(new Event('change'));
    }""")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text("/latent-map answered 404: model 'mlp2-p2' has no version 99 (available: 1, 2)")
    expect(page.locator("#map")).to_have_attribute("data-state", "error")

    page.select_option("#version", "2")
    expect(page.locator("#map")).to_have_attribute("data-state", "ready")
    expect(alert).to_be_hidden()
    # an overloaded service, then no service at all
    busy = {"error": {"code": "overloaded", "message": "model mlp2-p2 is busy (queue full); retry shortly"}}
    page.route(
        re.compile(r"/reconstruct\?"), lambda route: route.fulfill(status=503, json=busy, headers={"Retry-After": "1"})
    )
    draw(page, *A_SEVEN)
    expect(alert).to_contain_text("/reconstruct answered 503: model mlp2-p2 is busy (queue full); retry shortly")
    expect(page.locator("#reconstruction")).to_have_attribute("data-state", "error")
    page.unroute(re.compile(r"/reconstruct\?"))
    page.route(re.compile(r"/latent-map\?"), lambda route: route.abort("connectionrefused"))
    draw(page, [(100, 250), (200, 250)])
    expect(alert).to_contain_text("Could not reach the service for /latent-map")


def test_on_a_phone_the_page_fits_and_takes_a_finger(browser: Browser, server: str, tmp_path: Path) -> None:
    with open_demo(browser, server, viewport=PHONE, has_touch=True, is_mobile=True, device_scale_factor=2) as page:
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        for selector in ("#drawing", "#reconstruction", "#map"):
            box = page.locator(selector).bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], selector
        page.locator("#drawing").tap()  # a touch: pointer events with pointerType "touch"
        expect(page.locator("#drawing")).to_have_attribute("data-source", "drawing")
        expect(page.locator("#reconstruction")).to_have_attribute("data-state", "ready")
        assert 200 < ink(page) < 2000  # a dot about as wide as a stroke
        page.screenshot(path=tmp_path / "phone.png", full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_an_api_key_typed_into_the_page_is_sent(browser: Browser, store_root: Path, tmp_path: Path) -> None:
    with (
        live_server(tmp_path, store_root, default_model="mlp2-p2", api_key="s3cret") as live,
        open_demo(browser, live.url, ready=False) as page,
    ):
        alert = page.get_by_role("alert")
        expect(alert).to_contain_text("/models answered 401: missing or wrong API key")
        expect(alert).to_contain_text("Enter the service's API key above.")
        page.get_by_label("API key").fill("s3cret")
        page.get_by_label("API key").press("Enter")
        expect(page.locator("#map")).to_have_attribute("data-state", "ready")
        expect(alert).to_be_hidden()
        draw(page, *A_SEVEN)
        wait_for_analysis(page)


def test_the_page_follows_new_versions_and_a_model_gone_without_reloading(
    browser: Browser, store_root: Path, tmp_path: Path
) -> None:
    """The store changes under a running service; the open page shows it within a poll (5 s), keeping the drawing."""
    store = CheckpointStore(tmp_path / "store")
    shutil.copytree(store_root, store.root)
    with (
        live_server(tmp_path / "server", store.root, default_model="mlp2-p2", reload_interval=0.2) as live,
        open_demo(browser, live.url) as page,
    ):
        navigations: list[str] = []
        page.on("framenavigated", lambda frame: navigations.append(frame.url))
        page.evaluate("window.sameDocument = 'since the start'")  # gone if the page were loaded again
        versions = page.locator("#versions")
        expect(versions).to_have_attribute("data-stable", "2")
        expect(versions).to_have_attribute("data-latest", "2")
        draw(page, *A_SEVEN)
        wait_for_analysis(page)
        expect(versions).to_have_attribute("data-answered", "mlp2-p2 v2")  # the X-Model-Version of the answer
        drawn = ink(page)

        publish_copy(store, "mlp2-p2", 1)  # version 3, not promoted: shown, not chosen
        expect(versions).to_have_attribute("data-latest", "3")
        assert page.locator("#version option").evaluate_all("os => os.map(o => o.textContent)") == [
            "v1", "v2 (stable)", "v3 (latest)"]  # fmt: skip
        assert page.input_value("#version") == "2" and page.get_attribute("#map", "data-model") == "mlp2-p2 v2"

        store.promote("mlp2-p2", 3, "test")  # the page follows the stable version: map and drawing go to v3
        expect(versions).to_have_attribute("data-stable", "3")
        expect(page.locator("#version")).to_have_value("3")
        expect(page.locator("#map")).to_have_attribute("data-model", "mlp2-p2 v3")
        expect(page.locator("#mse")).to_contain_text("mlp2-p2 v3")
        expect(versions).to_have_text("mlp2-p2: stable v3, latest v3; last answer from mlp2-p2 v3")
        assert ink(page) == drawn and page.get_attribute("#drawing", "data-source") == "drawing"

        page.select_option("#version", "2")  # picked by hand: stays picked through a rollback and a promotion
        expect(page.locator("#map")).to_have_attribute("data-model", "mlp2-p2 v2")
        store.rollback("mlp2-p2", "test")
        expect(versions).to_have_attribute("data-stable", "2")
        store.promote("mlp2-p2", 1, "test")
        expect(versions).to_have_attribute("data-stable", "1")
        assert page.input_value("#version") == "2" and page.get_attribute("#map", "data-model") == "mlp2-p2 v2"

        page.select_option("#model", "mlp2-p8")
        expect(page.locator("#map")).to_have_attribute("data-model", "mlp2-p8 v1")
        shutil.rmtree(store.root / "mlp2-p8")
        expect(page.locator("#notice")).to_have_text("Model mlp2-p8 is no longer served. Choose another model.")
        assert page.input_value("#model") == "mlp2-p8"  # kept, marked: the user's choice is not swapped silently
        assert page.locator("#model option:checked").text_content() == "mlp2-p8 (no longer served)"
        assert ink(page) == drawn
        page.select_option("#model", "mlp2-p2")
        expect(page.locator("#notice")).to_be_hidden()
        expect(page.locator("#map")).to_have_attribute("data-model", "mlp2-p2 v1")  # another model: its stable
        assert page.locator("#model option").evaluate_all("os => os.map(o => o.value)") == ["mlp2-p2"]

        assert page.evaluate("window.sameDocument") == "since the start" and navigations == []


def test_the_page_asks_again_when_it_gets_the_focus(browser: Browser, store_root: Path, tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "store")
    shutil.copytree(store_root, store.root)
    with (
        live_server(tmp_path / "server", store.root, default_model="mlp2-p2", reload_interval=0.2) as live,
        live.client() as http,
        open_demo(browser, live.url, before="window.DEMO_POLL_MS = 3600000") as page,  # no poll by the clock
    ):
        expect(page.locator("#versions")).to_have_attribute("data-stable", "2")
        store.promote("mlp2-p2", 1, "test")
        deadline = time.monotonic() + 10
        while http.get("/models").json()["models"][0]["stable"] != 1:
            assert time.monotonic() < deadline, "the service did not follow the store"
            time.sleep(0.05)
        page.wait_for_timeout(500)
        assert page.get_attribute("#versions", "data-stable") == "2"  # not asked yet
        page.evaluate("window.dispatchEvent(new Event('focus'))")
        expect(page.locator("#versions")).to_have_attribute("data-stable", "1", timeout=5000)
        expect(page.locator("#map")).to_have_attribute("data-model", "mlp2-p2 v1")


def tab_to(page: Page, selector: str, presses: int = 40) -> list[str]:
    """Tab until `selector` has the focus; returns what got the focus on the way."""
    seen = []
    for _ in range(presses):
        page.keyboard.press("Tab")
        seen.append(page.evaluate("document.activeElement.id || document.activeElement.getAttribute('aria-label')"))
        if page.evaluate("(s) => document.activeElement.matches(s)", selector):
            return seen
    pytest.fail(f"Tab never reached {selector}; it went through {seen}")


def test_the_controls_work_from_the_keyboard(page: Page) -> None:
    seen = tab_to(page, "#map")
    assert seen[:4] == ["model", "version", "api-key", "clear"]
    assert next(s for s in seen if s and s.startswith("Load test digit")).startswith("Load test digit 0")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Enter")
    expect(page.locator("#decoded")).to_have_attribute("data-state", "ready")

    page.keyboard.press("Shift+Tab")  # back to the last test digit: a 9
    page.keyboard.press("Enter")
    expect(page.locator("#drawing")).to_have_attribute("data-source", "test-9")
    wait_for_analysis(page)
    assert ink(page) > 0
    page.locator("#clear").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#drawing")).to_have_attribute("data-source", "empty")
    expect(page.locator("#reconstruction")).to_have_attribute("data-state", "empty")
    assert page.get_attribute("#map", "data-drawn") is None
    assert ink(page) == 0

    page.locator("#digits button").first.focus()
    page.keyboard.press("Space")
    expect(page.locator("#drawing")).to_have_attribute("data-source", "test-0")
    wait_for_analysis(page)
    page.locator("#clear").focus()
    page.keyboard.press("Space")
    expect(page.locator("#reconstruction")).to_have_attribute("data-state", "empty")


def test_the_readme_screenshot_scene_on_the_shipped_checkpoints(browser: Browser, tmp_path: Path) -> None:
    """The scene of docs/demo.png: the shipped mlp2-p2, a hand-drawn 2, a decoded point of its map.
    The screenshot goes to tmp_path, and with AE_UPDATE_SCREENSHOT=1 over docs/demo.png."""
    with (
        live_server(tmp_path, REPO / "checkpoints", default_model="mlp2-p2") as live,
        open_demo(browser, live.url) as page,
    ):
        draw(page, [(75, 95), (105, 62), (155, 55), (195, 85), (190, 130), (150, 175), (95, 222), (205, 220)])
        wait_for_analysis(page)
        box = page.locator("#map").bounding_box()
        assert box is not None
        page.mouse.click(box["x"] + box["width"] * 0.36, box["y"] + box["height"] * 0.3)
        expect(page.locator("#decoded")).to_have_attribute("data-state", "ready")
        page.mouse.move(0, 0)
        update = os.environ.get("AE_UPDATE_SCREENSHOT") == "1"
        page.screenshot(path=REPO / "docs" / "demo.png" if update else tmp_path / "demo.png", full_page=True)


# ---------------------------------------------------------------------------- the API documentation, offline


def test_docs_pages_load_everything_from_the_service_itself(client: TestClient) -> None:
    expected = {"/docs": ["favicon.png", "swagger-ui-bundle.js", "swagger-ui.css"],
                "/redoc": ["favicon.png", "redoc.standalone.js"]}  # fmt: skip
    for path, assets in expected.items():
        page = client.get(path)
        assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
        assert not re.search(r"https?:|//", page.text), page.text  # no CDN, no other host
        references = re.findall(r'(?:src|href|spec-url)="([^"]*)"', page.text) + re.findall(
            r"url: '([^']*)'", page.text
        )
        assert "/openapi.json" in references
        served = sorted(urlsplit(url).path.removeprefix("/docs/assets/") for url in references if "/assets/" in url)
        assert served == assets, references
        for url in references:
            response = client.get(url)
            assert response.status_code == 200, url
            name = urlsplit(url).path.rsplit("/", 1)[-1]
            if name in docs.ASSETS:
                assert response.headers["content-type"].split(";")[0] == docs.ASSETS[name]
                assert response.content == (docs.STATIC / name).read_bytes() and len(response.content) > 4000, url
    assert "window.location.origin + '/docs/oauth2-redirect'" in client.get("/docs").text
    assert "oauth2" in client.get("/docs/oauth2-redirect").text


def test_docs_assets_are_only_the_listed_files(client: TestClient) -> None:
    for name in ("core.py", "__init__.py", "%2e%2e%2f__init__.py", "..%2F..%2Fapp.py"):
        missing = client.get(f"/docs/assets/{name}")
        assert missing.status_code == 404, name
    assert client.get("/docs/assets/nope.js").json()["error"]["code"] == "not_found"
    assert not [path for path in client.get("/openapi.json").json()["paths"] if path.startswith(("/docs", "/redoc"))]


def test_docs_need_no_key_as_before(configure: Callable[..., Settings]) -> None:
    with TestClient(create_app(configure(api_key="s3cret"))) as client:
        for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect", "/docs/assets/swagger-ui.css"):
            assert client.get(path).status_code == 200, path
        assert client.get("/models").status_code == 401


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


@pytest.mark.parametrize(
    ("path", "operation"),
    [
        ("/docs", ".opblock-post .opblock-summary-path[data-path='/reconstruct']"),  # Swagger UI
        ("/redoc", "h2:text-is('Reconstruct')"),  # ReDoc
    ],
)
def test_docs_render_their_operations_with_no_network_but_loopback(
    browser: Browser, server: str, path: str, operation: str
) -> None:
    session = browser.new_context(viewport=DESKTOP)
    page = session.new_page()
    page.set_default_timeout(WAIT_MS)
    elsewhere: list[str] = []
    errors: list[str] = []

    def loopback_only(route: Route) -> None:
        if urlsplit(route.request.url).hostname in LOOPBACK_HOSTS:
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", loopback_only)
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(f"{server}{path}")
        expect(page.locator(operation)).to_be_visible()
        assert errors == []
        assert elsewhere == []  # not even tried
    finally:
        session.close()
