"""Every client mistake is a 4xx in one JSON shape that says what was wrong."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pngs import encode_png

from service.app import create_app
from service.settings import Settings

ONE = [[0.5] * 784]
JSON = {"content-type": "application/json"}
RAW = {"content-type": "application/octet-stream"}
REPO = Path(__file__).resolve().parents[2]


def _error(response, status: int, *fragments: str) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) >= {"code", "message"}
    for fragment in fragments:
        assert fragment in error["message"], error["message"]
    return error


def test_wrong_image_shape_names_the_image(client: TestClient) -> None:
    images = [[0.0] * 784, [0.0] * 784, [0.0] * 780]
    error = _error(client.post("/reconstruct", json={"images": images}), 422, "images[2]", "[780]", "784 or 28x28")
    assert error["index"] == 2
    _error(client.post("/encode", json={"images": [[[0.0] * 27] * 28]}), 422, "images[0]", "[28, 27]")
    _error(client.post("/encode", json={"images": [0.0] * 784}), 422, "images[0]", "[]")


def test_non_numbers_are_rejected(client: TestClient) -> None:
    _error(client.post("/encode", json={"images": [["a"] * 784]}), 422, "images[0] must hold numbers")
    _error(client.post("/encode", json={"images": [[None] * 784]}), 422, "images[0] must hold numbers")
    _error(client.post("/encode", json={"images": "nope"}), 422, "'images' must be a list")


def test_out_of_range_values(client: TestClient) -> None:
    images = [[0.5] * 784, [0.5] * 783 + [1.5]]
    _error(client.post("/encode", json={"images": images}), 422, "images[1]", "outside [0, 1]")
    _error(client.post("/encode", json={"images": [[-0.1] * 784]}), 422, "images[0]", "outside [0, 1]")


def test_nan_and_infinity(client: TestClient) -> None:
    # JSON has no NaN or infinity: such a body is malformed
    _error(client.post("/encode", content=b'{"images": [[NaN]]}', headers=JSON), 400, "malformed JSON")
    _error(client.post("/encode", content=b'{"images": [[1e999]]}', headers=JSON), 400, "infinity")
    latents = np.array([[0.0, 1.0], [np.nan, 0.0]], "<f4").tobytes()
    _error(client.post("/decode", content=latents, headers=RAW), 422, "latents[1] contains NaN or infinity")
    latents = np.array([[np.inf, 1.0]], "<f4").tobytes()
    _error(client.post("/decode", content=latents, headers=RAW), 422, "latents[0] contains NaN or infinity")


def test_latents_of_the_wrong_size_give_p(client: TestClient) -> None:
    _error(
        client.post("/decode", json={"latents": [[0.0, 0.0, 0.0]]}), 422, "latents[0]", "2 (this model's latent size)"
    )
    _error(client.post("/decode?model=mlp2-p8", json={"latents": [[0.0, 0.0]]}), 422, "8 (this model's latent size)")
    _error(client.post("/decode", content=b"\0" * 12, headers=RAW), 422, "N x 2 float32")
    _error(client.post("/decode", json={"vectors": []}), 422, "'latents'")


def test_undecodable_images(client: TestClient) -> None:
    files = [("file", ("good.png", _png())), ("file", ("bad.png", b"this is not a png"))]
    _error(client.post("/reconstruct", files=files), 422, "file 'bad.png' (image 1)", "not a decodable image")
    _error(client.post("/encode", json={"images_png": ["%%%"]}), 422, "images_png[0] is not valid base64")
    _error(client.post("/encode", content=b"GIF89a...", headers={"content-type": "image/png"}), 422, "body")


def test_empty_batches(client: TestClient) -> None:
    _error(client.post("/encode", json={"images": []}), 422, "empty batch")
    _error(client.post("/encode", content=b"", headers=RAW), 422, "empty batch")
    _error(client.post("/decode", json={"latents": []}), 422, "empty batch")
    _error(client.post("/reconstruct", files={"note": (None, "text only")}), 422, "empty batch")


def test_malformed_bodies(client: TestClient) -> None:
    _error(client.post("/encode", content=b'{"images": [[0.1,', headers=JSON), 400, "malformed JSON")
    _error(client.post("/encode", content=b"", headers=JSON), 400, "empty body")
    _error(client.post("/encode", json=[1, 2]), 422, "expected a JSON object")
    _error(client.post("/encode", content=b"\0" * 785, headers=RAW), 422, "N x 784 uint8 bytes; got 785")
    bad_multipart = {"content-type": "multipart/form-data; boundary=xyz"}
    response = client.post("/encode", content=b"--xyz\r\nbroken", headers=bad_multipart)
    assert response.status_code in (400, 422), response.text


def test_wrong_content_type(client: TestClient) -> None:
    _error(client.post("/encode", content=b"1,2,3", headers={"content-type": "text/csv"}), 415, "text/csv")
    _error(client.post("/encode", content=b"1,2,3", headers={"content-type": ""}), 415, "missing")
    _error(client.post("/decode", content=_png(), headers={"content-type": "image/png"}), 415, "application/json")


def test_unknown_model_version_and_names_outside_the_store(client: TestClient) -> None:
    error = _error(client.post("/encode?model=mlp9-p2", json={"images": ONE}), 404, "unknown model 'mlp9-p2'")
    assert error["available"] == ["mlp2-p2", "mlp2-p8"]
    error = _error(client.post("/encode?model=mlp2-p2&version=7", json={"images": ONE}), 404, "no version 7")
    assert error["available_versions"] == [1, 2]
    for name in ("../mlp2-p2", "..", "mlp2-p2/1", "%2e%2e"):
        response = client.post("/encode", params={"model": name}, json={"images": ONE})
        _error(response, 422, "invalid model name")
    _error(client.post("/encode?version=0", json={"images": ONE}), 422, "version")
    _error(client.post("/encode?version=x", json={"images": ONE}), 422, "version")


def test_unavailable_output_format(client: TestClient) -> None:
    _error(client.post("/encode?format=png", json={"images": ONE}), 406, "'png' is not available")
    _error(client.get("/latent-map?format=raw"), 406, "json, png")
    _error(client.get("/latent-map?limit=0"), 422, "limit")


def test_unknown_route_and_method_use_the_same_shape(client: TestClient) -> None:
    assert _error(client.get("/nowhere"), 404)["code"] == "not_found"
    assert _error(client.get("/encode"), 405)["code"] == "method_not_allowed"


@pytest.fixture
def strict_client(configure: Callable[..., Settings]):  # type: ignore[no-untyped-def]
    limited = configure(max_images_per_request=4, max_body_bytes=64 * 1024)
    with TestClient(create_app(limited)) as test_client:
        yield test_client


def test_too_many_images_and_too_large_bodies(strict_client: TestClient) -> None:
    _error(strict_client.post("/encode", json={"images": ONE * 5}), 413, "5 images", "limit is 4")
    _error(strict_client.post("/encode", content=b"\0" * 784 * 5, headers=RAW), 413, "limit is 4")
    files = [("file", (f"{i}.png", _png())) for i in range(5)]
    assert strict_client.post("/encode", files=files).status_code == 413
    _error(strict_client.post("/encode", content=b"\0" * (64 * 1024 + 1), headers=RAW), 413, "exceeds the limit")

    def chunks():  # no Content-Length: the limit holds while streaming too
        for _ in range(100):
            yield b"\0" * 1024

    _error(strict_client.post("/encode", content=chunks(), headers=RAW), 413, "exceeds the limit")
    assert strict_client.post("/encode", json={"images": ONE * 4}).status_code == 200


def _png() -> bytes:
    return encode_png(np.zeros(784, np.float32))


def test_flat_and_nested_images_may_be_mixed_but_not_reshaped(client: TestClient) -> None:
    mixed = [[0.5] * 784, [[0.5] * 28] * 28]
    assert client.post("/encode", json={"images": mixed}).status_code == 200
    _error(client.post("/encode", json={"images": [[[0.5] * 2] * 392]}), 422, "images[0]", "[392, 2]")
    _error(client.post("/decode", json={"latents": [[[0.5], [0.5]]]}), 422, "latents[0]", "[2, 1]")
    _error(client.post("/encode", json={"images": [[True] * 784]}), 422, "images[0] must hold numbers")


@pytest.fixture(scope="module")
def shipped_client() -> Iterator[TestClient]:
    """The shipped checkpoints, fully trained: their decoders overflow on latents like 3.4e38."""
    settings = Settings(_env_file=None, store=REPO / "checkpoints", device="cpu")  # type: ignore[call-arg]
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.mark.parametrize("fmt", ["json", "png", "raw"])
@pytest.mark.parametrize("model", ["mlp2-p2", "mlp1-p2", "mlp2-p16"])
def test_latents_the_decoder_overflows_on_are_a_422_naming_them_in_every_format(
    shipped_client: TestClient, model: str, fmt: str
) -> None:
    p = int(model.rsplit("-p", 1)[1])
    huge = [[0.0] * p, [3.4e38, -3.4e38] * (p // 2)]  # finite float32, but no image comes out of them
    as_json = shipped_client.post(f"/decode?model={model}&format={fmt}", json={"latents": huge})
    error = _error(as_json, 422, "latents[1] is too far outside", f"{model}'s latent space")
    assert error["index"] == 1
    body = np.asarray(huge, "<f4").tobytes()
    as_raw = shipped_client.post(f"/decode?model={model}&format={fmt}", content=body, headers=RAW)
    assert _error(as_raw, 422, "latents[1]")["index"] == 1
    fine = shipped_client.post(f"/decode?model={model}&format=json", json={"latents": huge[:1]})
    assert fine.status_code == 200 and all(0 <= v <= 1 for v in fine.json()["images"][0])
