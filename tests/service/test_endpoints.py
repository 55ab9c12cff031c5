"""Every endpoint with every input and output format, through the app (lifespan included)."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from pngs import encode_png

from models import CheckpointStore
from service.settings import Settings


@pytest.fixture(scope="module")
def expected(store_root):  # type: ignore[no-untyped-def]
    """The models themselves, loaded in-process, to check what the service answers."""
    store = CheckpointStore(store_root)
    return {name: store.load_latest(name).model for name in ("mlp2-p2", "mlp2-p8")}


def _model_outputs(model: torch.nn.Module, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with torch.inference_mode():
        x = torch.from_numpy(images)
        codes = model.encode(x)
        return codes.numpy(), model.decode(codes).numpy()


def test_encode_json_flat_and_nested(client: TestClient, digits: np.ndarray, expected: dict) -> None:
    codes, _ = _model_outputs(expected["mlp2-p8"], digits)
    flat = client.post("/encode?model=mlp2-p8", json={"images": digits.tolist()})
    nested = client.post("/encode?model=mlp2-p8", json={"images": digits.reshape(-1, 28, 28).tolist()})
    for response in (flat, nested):
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["model"], body["version"]) == ("mlp2-p8", 1)
        np.testing.assert_allclose(body["latents"], codes, rtol=1e-5, atol=1e-5)


def test_decode_json(client: TestClient, expected: dict) -> None:
    latents = np.array([[0.0, 0.0], [1.5, -2.0]], np.float32)
    response = client.post("/decode", json={"latents": latents.tolist()})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model"], body["version"]) == ("mlp2-p2", 2)  # the default model, latest version
    with torch.inference_mode():
        want = expected["mlp2-p2"].decode(torch.from_numpy(latents)).numpy()
    np.testing.assert_allclose(body["images"], want, atol=1e-6)


def test_reconstruct_json_gives_reconstructions_and_mse(client: TestClient, digits: np.ndarray, expected: dict) -> None:
    _, reconstructions = _model_outputs(expected["mlp2-p2"], digits)
    response = client.post("/reconstruct", json={"images": digits.tolist()})
    assert response.status_code == 200, response.text
    body = response.json()
    np.testing.assert_allclose(body["reconstructions"], reconstructions, atol=1e-6)
    np.testing.assert_allclose(body["mse"], ((reconstructions - digits) ** 2).mean(axis=1), rtol=1e-4)


def test_version_can_be_pinned(client: TestClient, digits: np.ndarray) -> None:
    one = client.post("/encode?model=mlp2-p2&version=1", json={"images": digits[:1].tolist()}).json()
    two = client.post("/encode?model=mlp2-p2&version=2", json={"images": digits[:1].tolist()}).json()
    assert (one["version"], two["version"]) == (1, 2)
    assert one["latents"] != two["latents"]


def test_png_uploads_match_json(client: TestClient, digits: np.ndarray) -> None:
    files = [("file", (f"d{i}.png", encode_png(d), "image/png")) for i, d in enumerate(digits[:3])]
    uploaded = client.post("/reconstruct", files=files)
    as_json = client.post("/reconstruct", json={"images": digits[:3].tolist()})
    assert uploaded.status_code == 200, uploaded.text
    np.testing.assert_allclose(uploaded.json()["mse"], as_json.json()["mse"], rtol=1e-5)


def test_base64_png_and_png_body(client: TestClient, digits: np.ndarray) -> None:
    encoded = [base64.b64encode(encode_png(d)).decode() for d in digits[:2]]
    by_base64 = client.post("/encode", json={"images_png": encoded})
    by_data_url = client.post("/encode", json={"images_png": ["data:image/png;base64," + encoded[0]]})
    by_body = client.post("/encode", content=encode_png(digits[0]), headers={"content-type": "image/png"})
    as_json = client.post("/encode", json={"images": digits[:2].tolist()}).json()["latents"]
    assert by_base64.status_code == by_data_url.status_code == by_body.status_code == 200
    np.testing.assert_allclose(by_base64.json()["latents"], as_json, rtol=1e-5)
    np.testing.assert_allclose(by_data_url.json()["latents"], as_json[:1], rtol=1e-5)
    np.testing.assert_allclose(by_body.json()["latents"], as_json[:1], rtol=1e-5)


def test_a_light_background_drawing_is_inverted(client: TestClient) -> None:
    canvas = Image.new("L", (200, 200), 255)
    canvas.paste(0, (90, 40, 110, 160))  # a dark "1" on white paper
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    response = client.post("/reconstruct?format=raw", files={"file": ("one.png", buffer.getvalue())})
    assert response.status_code == 200
    assert np.frombuffer(response.content, np.uint8).reshape(28, 28)[14, 14] > 64  # white ink in the middle


def test_raw_bytes_in_and_out(client: TestClient, digits: np.ndarray, expected: dict) -> None:
    raw = np.rint(digits * 255).astype(np.uint8).tobytes()
    headers = {"content-type": "application/octet-stream", "accept": "application/octet-stream"}
    codes, reconstructions = _model_outputs(expected["mlp2-p2"], digits)

    recon = client.post("/reconstruct", content=raw, headers=headers)
    assert recon.status_code == 200 and recon.headers["content-type"] == "application/octet-stream"
    assert recon.headers["x-shape"] == "8,784"
    pixels = np.frombuffer(recon.content, np.uint8).reshape(8, 784)
    assert np.abs(pixels.astype(int) - np.rint(reconstructions * 255)).max() <= 1

    encoded = client.post("/encode", content=raw, headers=headers)
    np.testing.assert_allclose(np.frombuffer(encoded.content, "<f4").reshape(8, 2), codes, rtol=1e-5, atol=1e-5)

    decoded = client.post("/decode", content=codes.astype("<f4").tobytes(), headers=headers)
    assert decoded.status_code == 200 and len(decoded.content) == 8 * 784


def _png_size(content: bytes) -> tuple[int, int]:
    image = Image.open(io.BytesIO(content))
    assert image.format == "PNG"
    return image.size


def test_png_outputs(client: TestClient, digits: np.ndarray) -> None:
    grid = client.post("/reconstruct", json={"images": digits.tolist()}, headers={"accept": "image/png"})
    assert grid.status_code == 200 and grid.headers["content-type"] == "image/png"
    width, height = _png_size(grid.content)
    assert width >= 8 * 28 and height >= 2 * 28  # originals above reconstructions
    decoded = client.post("/decode?format=png", json={"latents": [[0, 0], [1, 1], [2, 2]]})
    assert decoded.status_code == 200 and _png_size(decoded.content)[0] >= 3 * 28
    scatter = client.get("/latent-map", headers={"accept": "image/png"})
    assert scatter.status_code == 200 and min(_png_size(scatter.content)) > 200


def test_latent_map_for_p2_and_p8(client: TestClient, store_root) -> None:  # type: ignore[no-untyped-def]
    small = client.get("/latent-map?limit=5").json()
    assert small["projection"] == "identity" and len(small["points"]) == 5
    codes = CheckpointStore(store_root).load("mlp2-p2", 2).latents
    assert small["points"][0]["label"] == int(codes.labels[0])
    assert small["points"][0]["x"] == pytest.approx(float(codes.codes[0, 0]), abs=1e-4)
    p8 = client.get("/latent-map?model=mlp2-p8").json()
    assert p8["projection"] == "pca" and len(p8["points"]) == 512  # the whole (small) test set
    assert {p["label"] for p in p8["points"]} == set(range(10))


def test_posted_images_land_where_the_test_set_has_them(client: TestClient, digits: np.ndarray) -> None:
    body = client.post("/latent-map?model=mlp2-p8&limit=8", json={"images": digits.tolist()}).json()
    assert len(body["positions"]) == 8
    # the posted digits are the first test digits, so they land on the first map points
    for point, position in zip(body["points"], body["positions"], strict=True):
        assert position["x"] == pytest.approx(point["x"], abs=1e-3)
        assert position["y"] == pytest.approx(point["y"], abs=1e-3)
    png = client.post("/latent-map?format=png", json={"images": digits.tolist()})
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"


def test_models_catalogue(client: TestClient) -> None:
    listing = client.get("/models").json()
    assert listing["default_model"] == "mlp2-p2"
    by_name = {m["name"]: m for m in listing["models"]}
    assert set(by_name) == {"mlp2-p2", "mlp2-p8"}  # the broken mlp1-p2 is not served
    assert by_name["mlp2-p2"]["versions"] == [1, 2] and by_name["mlp2-p8"]["latent_size"] == 8
    assert by_name["mlp2-p8"]["parameters"] > 0 and by_name["mlp2-p8"]["metrics"]["test_mse"] > 0
    detail = client.get("/models/mlp2-p2").json()
    assert [v["version"] for v in detail["versions"]] == [1, 2]
    assert detail["versions"][0]["architecture"]["hidden_sizes"] == [256, 128]
    assert client.get("/models/mlp9").status_code == 404


def test_health_readiness_and_metrics(client: TestClient, digits: np.ndarray) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert "mlp1-p2/1" in ready.json()["skipped"]  # broken, skipped with its reason
    assert "model.safetensors" in ready.json()["skipped"]["mlp1-p2/1"]
    client.post("/reconstruct", json={"images": digits[:3].tolist()})
    text = client.get("/metrics").text
    assert 'ae_requests_total{endpoint="/reconstruct",model="mlp2-p2",status="200"}' in text
    assert 'ae_request_seconds_count{endpoint="/reconstruct",model="mlp2-p2"}' in text
    assert 'ae_batch_images_sum{model="mlp2-p2",version="2"} 3.0' in text
    assert 'ae_queue_images{model="mlp2-p2",version="2"} 0.0' in text


def test_openapi_documents_every_body_with_examples(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path in ("/encode", "/reconstruct", "/decode"):
        content = spec["paths"][path]["post"]["requestBody"]["content"]
        assert "examples" in content["application/json"]
        assert "application/octet-stream" in content
    assert "multipart/form-data" in spec["paths"]["/reconstruct"]["post"]["requestBody"]["content"]
    assert client.get("/docs").status_code == 200


def test_openapi_documents_the_query_parameters_of_the_lean_routes(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()

    def query(path: str, method: str) -> dict[str, dict]:
        return {p["name"]: p for p in spec["paths"][path][method]["parameters"] if p["in"] == "query"}

    for path in ("/encode", "/decode", "/reconstruct"):
        assert set(query(path, "post")) == {"model", "version", "format"}
        operation = spec["paths"][path]["post"]
        assert operation["tags"] == ["inference"] and "422" in operation["responses"]
    map_params = {"model", "version", "format", "limit"}
    assert set(query("/latent-map", "get")) == set(query("/latent-map", "post")) == map_params
    version = query("/encode", "post")["version"]["schema"]
    assert {"type": "integer", "minimum": 1} in version["anyOf"]


def test_zero_models_is_not_ready(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(store=tmp_path, device="cpu", _env_file=None)  # type: ignore[call-arg]
    from service.app import create_app

    with TestClient(create_app(settings)) as empty:
        response = empty.get("/readyz")
        assert response.status_code == 503 and response.json()["error"]["code"] == "not_ready"
        assert empty.get("/healthz").status_code == 200
        missing = empty.post("/encode", json={"images": [[0.0] * 784]})
        assert missing.status_code == 404 and missing.json()["error"]["available"] == []
