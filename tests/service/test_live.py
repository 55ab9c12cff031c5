"""The service as it really runs: `python -m service.cli` (uvicorn) on a loopback port, spoken to over HTTP.

The other service tests call the ASGI app in-process; these start a real server process and
check what only a real one shows: bodies through a real HTTP parser, forward passes shared by
concurrent connections, a graceful SIGTERM, a client that hangs up, and the README's curl tour.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch
from liveserver import LOOPBACK, REPO, STOP_DEADLINE, LiveServer, live_server
from PIL import Image
from pngs import encode_png
from prometheus_client.parser import text_string_to_metric_families

from models import CheckpointStore
from service.imaging import decode_png
from training.data import ImageData

pytestmark = pytest.mark.slow  # live servers, browsers, benchmark or long training runs: make test-fast skips them

SHIPPED = REPO / "checkpoints"
README_URL = "http://127.0.0.1:8000"


# ---------------------------------------------------------------------------- helpers


def _samples(metrics_text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(metrics_text)
        for sample in family.samples
        if sample.name == name
    ]


def _sample(metrics_text: str, name: str, **labels: str) -> float:
    found = [value for have, value in _samples(metrics_text, name) if have == labels]
    assert len(found) == 1, f"{name}{labels} not in /metrics exactly once:\n{metrics_text}"
    return found[0]


def _batches(metrics_text: str, model: str, version: int) -> tuple[float, float]:
    """(forward passes, images in them) so far for one model version, from /metrics."""
    labels = {"model": model, "version": str(version)}
    return _sample(metrics_text, "ae_batch_images_count", **labels), _sample(
        metrics_text, "ae_batch_images_sum", **labels
    )


def _requests_seen(metrics_text: str, endpoint: str) -> float:
    """Requests the server has finished for one route, whatever their status."""
    return sum(value for labels, value in _samples(metrics_text, "ae_requests_total") if labels["endpoint"] == endpoint)


def _png(content: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(content))
    assert image.format == "PNG"
    image.load()
    return image


def _error(response: httpx.Response, status: int, code: str, *fragments: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == code and isinstance(error["message"], str), error
    for fragment in fragments:
        assert fragment in error["message"], error["message"]
    return error


def _encode(model: torch.nn.Module, images: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model.encode(torch.from_numpy(np.asarray(images, np.float32))).numpy()


def _decode(model: torch.nn.Module, latents: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model.decode(torch.from_numpy(np.asarray(latents, np.float32))).numpy()


def _pixels(images: np.ndarray) -> np.ndarray:
    return np.rint(np.asarray(images) * 255).astype(np.int64)


JSON_TYPE = {"content-type": "application/json"}
RAW = "application/octet-stream"


# ---------------------------------------------------------------------------- the test store


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, store_root: Path) -> Iterator[LiveServer]:
    """One server on the test store for the endpoint, error and batching tests (batches wait up to 50 ms)."""
    workdir = tmp_path_factory.mktemp("live")
    with live_server(workdir, store_root, default_model="mlp2-p2", max_delay_ms=50) as running:
        yield running


@pytest.fixture(scope="module")
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture(scope="module")
def models(store_root: Path) -> dict[str, torch.nn.Module]:
    """The served models, loaded in-process, to check what the server answers."""
    store = CheckpointStore(store_root)
    loaded = {name: store.load_latest(name).model for name in ("mlp2-p2", "mlp2-p8")}
    loaded["mlp2-p2/1"] = store.load("mlp2-p2", 1).model
    return loaded


def test_encode_every_input_format(http: httpx.Client, digits: np.ndarray, models: dict) -> None:
    want8, want2 = _encode(models["mlp2-p8"], digits), _encode(models["mlp2-p2"], digits)
    pngs = [encode_png(digit) for digit in digits]
    encoded = [base64.b64encode(png).decode() for png in pngs]
    raw = _pixels(digits).astype(np.uint8).tobytes()
    bodies: dict[str, dict[str, Any]] = {
        "json flat": {"json": {"images": digits.tolist()}},
        "json 28x28": {"json": {"images": digits.reshape(-1, 28, 28).tolist()}},
        "multipart": {"files": [("file", (f"digit{i}.png", png, "image/png")) for i, png in enumerate(pngs)]},
        "base64": {"json": {"images_png": encoded[:4] + ["data:image/png;base64," + e for e in encoded[4:]]}},
        "raw uint8": {"content": raw, "headers": {"content-type": RAW}},
    }
    for what, body in bodies.items():
        response = http.post("/encode?model=mlp2-p8", **body)
        assert response.status_code == 200, (what, response.text)
        assert response.headers["content-type"] == "application/json"
        reply = response.json()
        assert (reply["model"], reply["version"]) == ("mlp2-p8", 1), what
        np.testing.assert_allclose(reply["latents"], want8, rtol=1e-5, atol=1e-5, err_msg=what)

    one = http.post("/encode", content=pngs[5], headers={"content-type": "image/png"})  # the default model
    assert one.status_code == 200, one.text
    assert (one.json()["model"], one.json()["version"]) == ("mlp2-p2", 2)
    np.testing.assert_allclose(one.json()["latents"], want2[5:6], rtol=1e-5, atol=1e-5)

    pinned = http.post("/encode?model=mlp2-p2&version=1", json={"images": digits[:2].tolist()})
    assert pinned.json()["version"] == 1
    np.testing.assert_allclose(pinned.json()["latents"], _encode(models["mlp2-p2/1"], digits[:2]), atol=1e-5)

    for accept in ({"accept": RAW}, {}):
        query = "" if accept else "&format=raw"
        floats = http.post(f"/encode?model=mlp2-p8{query}", content=raw, headers={"content-type": RAW, **accept})
        assert floats.status_code == 200 and floats.headers["content-type"] == RAW, floats.text
        assert floats.headers["x-shape"] == "8,8"
        np.testing.assert_allclose(np.frombuffer(floats.content, "<f4").reshape(8, 8), want8, rtol=1e-5, atol=1e-5)


def test_decode_every_output_format(http: httpx.Client, models: dict) -> None:
    latents = np.array([[0.0, 0.0], [1.5, -2.0], [-1.0, 0.5]], np.float32)
    want = _decode(models["mlp2-p2"], latents)

    as_json = http.post("/decode", json={"latents": latents.tolist()})
    assert as_json.status_code == 200, as_json.text
    assert (as_json.json()["model"], as_json.json()["version"]) == ("mlp2-p2", 2)
    np.testing.assert_allclose(as_json.json()["images"], want, atol=1e-6)

    by_accept = http.post("/decode", json={"latents": latents.tolist()}, headers={"accept": "image/png"})
    by_query = http.post("/decode?format=png", json={"latents": latents.tolist()})
    for response in (by_accept, by_query):
        assert response.status_code == 200 and response.headers["content-type"] == "image/png", response.text
        grid = np.asarray(_png(response.content).convert("L"), np.int64)
        assert grid.shape == (28 * 2, 3 * 28 * 2)  # one row of three digits, each pixel doubled
        cells = grid[::2, ::2].reshape(28, 3, 28).transpose(1, 0, 2).reshape(3, 784)
        assert np.abs(cells - _pixels(want)).max() <= 1

    raw = http.post("/decode", content=latents.astype("<f4").tobytes(), headers={"content-type": RAW, "accept": RAW})
    assert raw.status_code == 200 and raw.headers["x-shape"] == "3,784", raw.text
    assert np.abs(np.frombuffer(raw.content, np.uint8).reshape(3, 784) - _pixels(want)).max() <= 1

    p8 = http.post("/decode?model=mlp2-p8&format=raw", json={"latents": [[0.25] * 8]})
    assert p8.status_code == 200, p8.text
    assert np.abs(np.frombuffer(p8.content, np.uint8) - _pixels(_decode(models["mlp2-p8"], [[0.25] * 8])[0])).max() <= 1


def test_reconstruct_every_output_format(http: httpx.Client, digits: np.ndarray, models: dict) -> None:
    want = _decode(models["mlp2-p2"], _encode(models["mlp2-p2"], digits))
    files = [("file", (f"d{i}.png", encode_png(digit), "image/png")) for i, digit in enumerate(digits[:5])]

    uploaded = http.post("/reconstruct", files=files)
    assert uploaded.status_code == 200, uploaded.text
    body = uploaded.json()
    np.testing.assert_allclose(body["reconstructions"], want[:5], atol=1e-5)
    np.testing.assert_allclose(body["mse"], ((want[:5] - digits[:5]) ** 2).mean(axis=1), rtol=1e-4)

    raw_in = _pixels(digits).astype(np.uint8).tobytes()
    by_accept = http.post("/reconstruct", json={"images": digits.tolist()}, headers={"accept": "image/png"})
    by_query = http.post("/reconstruct?format=png", content=raw_in, headers={"content-type": RAW})
    for response in (by_accept, by_query):
        assert response.status_code == 200 and response.headers["content-type"] == "image/png", response.text
        picture = np.asarray(_png(response.content).convert("L"), np.int64)
        assert picture.shape == (2 * 28 * 2, 8 * 28 * 2)  # originals above reconstructions, pixels doubled
        rows = picture[::2, ::2].reshape(2, 28, 8, 28).transpose(0, 2, 1, 3).reshape(2, 8, 784)
        np.testing.assert_array_equal(rows[0], _pixels(digits))  # the originals exactly as sent
        assert np.abs(rows[1] - _pixels(want)).max() <= 1

    raw = http.post("/reconstruct", json={"images": digits.tolist()}, headers={"accept": RAW})
    assert raw.status_code == 200 and raw.headers["x-shape"] == "8,784", raw.text
    assert np.abs(np.frombuffer(raw.content, np.uint8).reshape(8, 784) - _pixels(want)).max() <= 1


def test_latent_map_json_and_png(http: httpx.Client, digits: np.ndarray, store_root: Path) -> None:
    small = http.get("/latent-map?limit=5")
    assert small.status_code == 200, small.text
    stored = CheckpointStore(store_root).load("mlp2-p2", 2).latents
    body = small.json()
    assert body["projection"] == "identity" and len(body["points"]) == 5
    for point, code, label in zip(body["points"], stored.codes[:5].tolist(), stored.labels[:5].tolist(), strict=True):
        assert point == {"x": pytest.approx(code[0], abs=1e-4), "y": pytest.approx(code[1], abs=1e-4), "label": label}

    placed = http.post("/latent-map?model=mlp2-p8&limit=8", json={"images": digits.tolist()}).json()
    assert placed["projection"] == "pca" and len(placed["positions"]) == 8
    for point, position in zip(placed["points"], placed["positions"], strict=True):  # the first test digits
        assert position == {"x": pytest.approx(point["x"], abs=1e-3), "y": pytest.approx(point["y"], abs=1e-3)}

    plain = http.get("/latent-map", headers={"accept": "image/png"})
    starred = http.post("/latent-map?format=png", files=[("file", ("seven.png", encode_png(digits[0]), "image/png"))])
    for response in (plain, starred):
        assert response.status_code == 200 and response.headers["content-type"] == "image/png", response.text
        assert _png(response.content).size == (700, 600)
    assert plain.content != starred.content  # the posted digit is drawn as a star


def test_catalogue_health_metrics_docs_and_access_log(server: LiveServer, http: httpx.Client, store_root: Path) -> None:
    store = CheckpointStore(store_root)
    listing = http.get("/models").json()
    assert listing["default_model"] == "mlp2-p2"
    by_name = {model["name"]: model for model in listing["models"]}
    assert set(by_name) == {"mlp2-p2", "mlp2-p8"}  # the broken mlp1-p2 is not served
    assert by_name["mlp2-p2"]["versions"] == [1, 2] and by_name["mlp2-p2"]["latest"] == 2
    assert by_name["mlp2-p8"]["latent_size"] == 8
    assert by_name["mlp2-p8"]["metrics"] == store.load_latest("mlp2-p8").metadata["metrics"]
    parameters = sum(p.numel() for p in store.load_latest("mlp2-p8").model.parameters())
    assert by_name["mlp2-p8"]["parameters"] == parameters

    detail = http.get("/models/mlp2-p2").json()
    assert detail["name"] == "mlp2-p2" and [v["version"] for v in detail["versions"]] == [1, 2]
    assert detail["versions"][0]["metrics"] == store.load("mlp2-p2", 1).metadata["metrics"]

    assert http.get("/healthz").json() == {"status": "ok"}
    ready = http.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready" and ready.json()["versions"] == 3
    assert "model.safetensors" in ready.json()["skipped"]["mlp1-p2/1"]

    metrics = http.get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    assert _sample(metrics.text, "ae_requests_total", endpoint="/models", model="", status="200") >= 1
    assert _sample(metrics.text, "ae_queue_images", model="mlp2-p8", version="1") == 0

    spec = http.get("/openapi.json").json()
    assert {"/encode", "/decode", "/reconstruct", "/latent-map", "/models", "/models/{name}"} <= set(spec["paths"])
    assert "multipart/form-data" in spec["paths"]["/reconstruct"]["post"]["requestBody"]["content"]
    docs = http.get("/docs")
    assert docs.status_code == 200 and "swagger-ui" in docs.text and "/openapi.json" in docs.text
    assert '"GET /docs HTTP/1.1" 200' in server.log()  # uvicorn's access log, on by default (AE_ACCESS_LOG)


@pytest.mark.anyio
async def test_bad_requests_get_4xx_json_and_do_not_disturb_good_ones(
    server: LiveServer, digits: np.ndarray, models: dict
) -> None:
    wrong_shape = {"images": [[0.0] * 784, [0.0] * 784, [0.0] * 780]}
    async with server.async_client() as client:
        before = (await client.get("/metrics")).text
        good = [client.post("/encode", json={"images": [digit.tolist()]}) for digit in digits]
        bad = [
            client.post("/encode", content=b'{"images": [[0.1, 0.2,', headers=JSON_TYPE),
            client.post("/reconstruct", json=wrong_shape),
            client.post("/encode", content=b"0.5, 0.5", headers={"content-type": "text/plain"}),
            client.post("/encode?model=mlp9-p2", json={"images": [digits[0].tolist()]}),
            client.post("/encode?model=mlp2-p2&version=7", json={"images": [digits[0].tolist()]}),
            client.post("/decode", json={"latents": [[0.0, 0.0, 0.0]]}),
        ]
        responses = await asyncio.gather(*good, *bad)
        after = (await client.get("/metrics")).text

    malformed, shape, media, model, version, latents = responses[len(good) :]
    _error(malformed, 400, "malformed_body", "malformed JSON")
    assert _error(shape, 422, "invalid_input", "images[2]", "[780]", "784 or 28x28")["index"] == 2
    _error(media, 415, "unsupported_media_type", "'text/plain'", "application/json")
    assert _error(model, 404, "not_found", "mlp9-p2")["available"] == ["mlp2-p2", "mlp2-p8"]
    assert _error(version, 404, "not_found", "no version 7")["available_versions"] == [1, 2]
    assert _error(latents, 422, "invalid_input", "latents[0]", "2 (this model's latent size)")["index"] == 0

    want = _encode(models["mlp2-p2"], digits)
    for index, response in enumerate(responses[: len(good)]):
        assert response.status_code == 200, response.text
        np.testing.assert_allclose(response.json()["latents"], want[index : index + 1], rtol=1e-5, atol=1e-5)
    passes, images = np.subtract(_batches(after, "mlp2-p2", 2), _batches(before, "mlp2-p2", 2))
    assert images == len(good)  # no refused request reached the model
    assert passes >= 1


@pytest.mark.anyio
async def test_concurrent_requests_share_forward_passes(
    server: LiveServer, mnist: ImageData, models: dict[str, torch.nn.Module]
) -> None:
    count = 48
    images = mnist.test_images[100 : 100 + count].numpy()
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with server.async_client(limits=limits) as client:
        # open the connections and build the requests first, so that connecting and encoding do not spread the burst
        assert {r.status_code for r in await asyncio.gather(*(client.get("/healthz") for _ in range(count)))} == {200}
        requests = [
            client.build_request("POST", "/encode?model=mlp2-p2", json={"images": [image.tolist()]}) for image in images
        ]
        before = (await client.get("/metrics")).text
        started = time.monotonic()
        responses = await asyncio.gather(*(client.send(request) for request in requests))
        seconds = time.monotonic() - started
        after = (await client.get("/metrics")).text

    want = _encode(models["mlp2-p2"], images)
    for index, response in enumerate(responses):  # each client got its own digit's code, not a neighbour's
        assert response.status_code == 200, response.text
        np.testing.assert_allclose(response.json()["latents"], want[index : index + 1], rtol=1e-5, atol=1e-5)
    passes, served = np.subtract(_batches(after, "mlp2-p2", 2), _batches(before, "mlp2-p2", 2))
    assert served == count
    assert passes <= count // 3, f"{count} concurrent requests took {passes:.0f} forward passes in {seconds:.2f} s"


# ---------------------------------------------------------------------------- shutdown and disconnects


@pytest.mark.anyio
async def test_sigterm_answers_the_queued_requests_then_exits_cleanly(
    tmp_path: Path, store_root: Path, digits: np.ndarray, models: dict
) -> None:
    count = 6
    settings = {"default_model": "mlp2-p2", "max_delay_ms": 1500, "max_batch_size": 4096, "access_log": False}
    with live_server(tmp_path, store_root, **settings) as live:
        async with live.async_client() as client, live.async_client() as watcher:
            requests = [
                asyncio.ensure_future(client.post("/encode", json={"images": [digit.tolist()]}))
                for digit in digits[:count]
            ]
            deadline = time.monotonic() + 10
            queued = 0.0
            while queued < count and time.monotonic() < deadline and not any(r.done() for r in requests):
                await asyncio.sleep(0.02)
                queued = _sample((await watcher.get("/metrics")).text, "ae_queue_images", model="mlp2-p2", version="2")
            assert queued == count, f"{queued} of {count} images queued; the server log:\n{live.log()}"
            assert not any(r.done() for r in requests)

            live.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            responses = await asyncio.wait_for(asyncio.gather(*requests), timeout=30)
            code = await asyncio.to_thread(live.process.wait, STOP_DEADLINE)
            exited = time.monotonic() - signalled

    want = _encode(models["mlp2-p2"], digits[:count])
    for index, response in enumerate(responses):
        assert response.status_code == 200, response.text
        np.testing.assert_allclose(response.json()["latents"], want[index : index + 1], rtol=1e-5, atol=1e-5)
    # a graceful stop exits with 0 (uvicorn alone would re-raise the SIGTERM: -15 here, 143 in a shell)
    assert code == 0, live.log()
    assert live.log().rstrip().endswith(f"Finished server process [{live.process.pid}]"), live.log()
    assert "Application shutdown complete." in live.log()
    assert exited < 8, f"exited {exited:.1f} s after SIGTERM"
    assert "Traceback" not in live.log()
    assert "POST /encode" not in live.log()  # AE_ACCESS_LOG=false; the server's own lines are still there


def _post_and_hang_up(port: int, body: bytes, wait_until: Any = None) -> None:
    """A complete HTTP/1.1 POST /encode on a raw socket, closed without reading the answer."""
    head = (
        f"POST /encode?model=mlp2-p2 HTTP/1.1\r\nHost: {LOOPBACK}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    with socket.create_connection((LOOPBACK, port), timeout=10) as connection:
        connection.sendall(head.encode() + body)
        if wait_until is not None:
            wait_until()


def test_a_client_that_hangs_up_costs_no_forward_pass(tmp_path: Path, store_root: Path, digits: np.ndarray) -> None:
    body = json.dumps({"images": [digits[0].tolist()]}).encode()
    with live_server(tmp_path, store_root, default_model="mlp2-p2", max_delay_ms=1000) as live, live.client() as http:

        def metrics() -> str:
            return http.get("/metrics").text

        def wait_for(condition: Any, what: str, seconds: float = 10) -> None:
            deadline = time.monotonic() + seconds
            while not condition():
                assert time.monotonic() < deadline, f"timed out waiting until {what}; the server log:\n{live.log()}"
                time.sleep(0.02)

        def queued() -> float:
            return _sample(metrics(), "ae_queue_images", model="mlp2-p2", version="2")

        start = metrics()
        # 1. hang up at once: the request reaches the server, which drops it
        sent = time.monotonic()
        _post_and_hang_up(live.port, body)
        wait_for(lambda: _requests_seen(metrics(), "/encode") == 1, "the server has handled the request")
        time.sleep(max(0.0, sent + 1.5 - time.monotonic()))  # past the 1 s batching delay
        wait_for(lambda: queued() == 0, "nothing is queued")
        assert _batches(metrics(), "mlp2-p2", 2) == _batches(start, "mlp2-p2", 2)

        # 2. hang up while the request waits in the batch queue
        _post_and_hang_up(live.port, body, lambda: wait_for(lambda: queued() == 1, "the image is queued", 5))
        wait_for(lambda: queued() == 0, "the batch has left the queue")  # at the batching delay
        wait_for(lambda: _requests_seen(metrics(), "/encode") == 2, "the server has handled the request")
        time.sleep(0.2)
        assert _batches(metrics(), "mlp2-p2", 2) == _batches(start, "mlp2-p2", 2)

        # a client that waits is served as usual, in one pass
        answer = http.post("/encode", json={"images": [digits[0].tolist()]})
        assert answer.status_code == 200, answer.text
        assert np.subtract(_batches(metrics(), "mlp2-p2", 2), _batches(start, "mlp2-p2", 2)).tolist() == [1, 1]
        # a hang-up is the client's doing: counted as 499, never as a server error, and no traceback
        statuses = {labels["status"] for labels, _ in _samples(metrics(), "ae_requests_total")}
        assert "499" in statuses and not any(status.startswith("5") for status in statuses), statuses
        assert "Traceback" not in live.log(), live.log()


# ---------------------------------------------------------------------------- the README's curl tour


TOUR_PICTURES = ("reconstructions.png", "decoded.png", "latent-map.png", "my-digit-on-the-map.png")


def _tutorial() -> str:
    readme = (REPO / "README.md").read_text()
    found = re.search(r"<!-- tutorial:start -->\s*```bash\n(.*?)```\s*<!-- tutorial:end -->", readme, re.DOTALL)
    assert found, "README.md has no ```bash block between <!-- tutorial:start --> and <!-- tutorial:end -->"
    return found.group(1)


def _curl_commands(script: str) -> list[list[str]]:
    lines = script.replace("\\\n", " ").splitlines()
    return [shlex.split(line) for line in lines if line.strip().startswith("curl ")]


def _json_values(text: str) -> list[Any]:
    """The JSON documents curl printed one after another (bodies have no trailing newline)."""
    decoder, values, position = json.JSONDecoder(), [], 0
    while position < len(text):
        if text[position].isspace():
            position += 1
            continue
        value, position = decoder.raw_decode(text, position)
        values.append(value)
    return values


def run_tutorial(store: Path, workdir: Path) -> None:
    """Run the README's curl block, as written, against a server on `store`, and check what it printed and wrote."""
    script = _tutorial()
    assert README_URL in script
    commands = _curl_commands(script)
    required = sorted({name for command in commands for name in re.findall(r"model=([\w-]+)", " ".join(command))})
    checkpoints = CheckpointStore(store)
    missing = [name for name in required if not checkpoints.versions(name)]
    assert not missing, f"the tutorial uses {required}; {store} lacks {missing}"
    if shutil.which("curl") is None:
        pytest.fail("curl is not installed: the README's tour needs it (apt-get install curl)")
    latest = {name: checkpoints.load_latest(name) for name in required}
    shipped = {name: checkpoint.model for name, checkpoint in latest.items()}

    repo = workdir / "repo"  # the repository root as the tour needs it: docs/examples/
    repo.mkdir()
    (repo / "docs").symlink_to(REPO / "docs", target_is_directory=True)
    with live_server(workdir / "server", store) as live:
        script = script.replace(README_URL, live.url)
        env = {key: value for key, value in os.environ.items() if "proxy" not in key.lower()}
        env["NO_PROXY"] = env["no_proxy"] = LOOPBACK
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script], cwd=repo, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}\nserver:\n{live.log()}"

    printed = _json_values(done.stdout)
    to_stdout = [command for command in commands if "-o" not in command]
    assert len(printed) == len(to_stdout), done.stdout
    seven = decode_png((REPO / "docs/examples/seven.png").read_bytes())
    for command, value in zip(to_stdout, printed, strict=True):
        url = httpx.URL(command[-1])
        model = url.params.get("model", "")
        if url.path == "/readyz":
            assert value["status"] == "ready" and value["versions"] >= len(required)
        elif url.path == "/models":
            assert set(required) <= {entry["name"] for entry in value["models"]}
        elif url.path == "/encode":
            inputs = (
                np.asarray(json.loads((REPO / "docs/examples/one.json").read_text())["images"], np.float32)
                if "-d" in command
                else seven[None]
            )
            assert value["model"] == model
            np.testing.assert_allclose(value["latents"], _encode(shipped[model], inputs), rtol=1e-4, atol=1e-4)
        elif url.path == "/reconstruct":
            want = _decode(shipped[model], _encode(shipped[model], seven[None]))
            np.testing.assert_allclose(value["reconstructions"], want, atol=1e-4)
            np.testing.assert_allclose(value["mse"], ((want - seven) ** 2).mean(axis=1), rtol=1e-3)
        elif url.path == "/latent-map":
            stored = latest[model].latents
            limit = int(url.params["limit"])
            points = stored.to_map(stored.codes[:limit]).tolist()
            assert value["points"] == [
                {"x": pytest.approx(x, abs=1e-4), "y": pytest.approx(y, abs=1e-4), "label": label}
                for (x, y), label in zip(points, stored.labels[:limit].tolist(), strict=True)
            ]
        else:
            pytest.fail(f"the tutorial calls {url.path}: teach this test what to expect of it")

    tour = repo / "tour"  # every picture there, none in the repository root; git ignores the folder
    assert sorted(path.name for path in repo.iterdir()) == ["docs", "tour"]
    assert sorted(path.name for path in tour.iterdir()) == sorted(TOUR_PICTURES)
    assert "/tour/" in (REPO / ".gitignore").read_text().splitlines()
    pictures = {name: _png((tour / name).read_bytes()) for name in ("reconstructions.png", "decoded.png")}
    assert pictures["reconstructions.png"].size == (2 * 28 * 2, 2 * 28 * 2)  # two digits over their reconstructions
    assert pictures["decoded.png"].size == (2 * 28 * 2, 28 * 2)  # two decoded points
    maps = {name: _png((tour / name).read_bytes()) for name in ("latent-map.png", "my-digit-on-the-map.png")}
    assert {image.size for image in maps.values()} == {(700, 600)}
    assert maps["latent-map.png"].tobytes() != maps["my-digit-on-the-map.png"].tobytes()  # the star


def test_the_readme_curl_tour_works_as_written(tmp_path: Path) -> None:
    run_tutorial(SHIPPED, tmp_path)
