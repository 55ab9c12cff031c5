"""The Open Inference Protocol (KServe V2) in-process: endpoints, the mapping onto the models, binary tensors, errors.

Every inference result is compared with the REST API's answer to the same input, on the same app.
Real clients (tritonclient) against a live server: test_v2_live.py.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable

import httpx
import numpy as np
import orjson
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.types import Receive, Scope, Send
from v2_tensors import read, request

from service.app import create_app
from service.oip.http import InferLane
from service.oip.parsing import _cached_header as parse
from service.settings import Settings

INFER = "/v2/models/mlp2-p2/infer"
OCTETS = {"content-type": "application/octet-stream", "accept": "application/octet-stream"}


def _infer(client: TestClient, *inputs: tuple[str, np.ndarray], path: str = INFER, **options):  # type: ignore[no-untyped-def]
    body, headers = request(list(inputs), **options)
    response = client.post(path, content=body, headers=headers)
    assert response.status_code == 200, response.text
    return read(response.content, response.headers.get("inference-header-content-length"))


def _error(response, status: int, *fragments: str) -> str:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    message = response.json()["error"]
    assert isinstance(message, str)
    for fragment in fragments:
        assert fragment in message, message
    return message


# ---------------------------------------------------------------------------------- endpoints


def test_server_metadata_and_health(client: TestClient) -> None:
    assert client.get("/v2").json() == {
        "name": "mnist-autoencoders",
        "version": "0.1.0",
        "extensions": ["binary_tensor_data", "model_configuration", "model_repository", "statistics"],
    }
    for path in (
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/mlp2-p2/ready",
        "/v2/models/mlp2-p8/versions/1/ready",
    ):
        response = client.get(path)
        assert (response.status_code, response.content) == (200, b""), path
    _error(client.get("/v2/models/mlp2-p2/versions/7/ready"), 404, "no version 7", "available versions: 1, 2")


def test_not_ready_without_models(configure: Callable[..., Settings], tmp_path) -> None:  # type: ignore[no-untyped-def]
    with TestClient(create_app(configure(store=tmp_path))) as empty:
        assert empty.get("/v2/health/live").status_code == 200
        assert empty.get("/v2/health/ready").status_code == 400  # the spec: a 4xx says false
        _error(empty.get("/v2/models/mlp2-p2"), 404, "unknown model 'mlp2-p2'")


def test_model_metadata_shows_the_mapping(client: TestClient) -> None:
    meta = client.get("/v2/models/mlp2-p8").json()
    assert meta["name"] == "mlp2-p8" and meta["versions"] == ["1"] and meta["platform"] == "pytorch"
    assert meta["inputs"] == [
        {"name": "images", "datatype": "FP32", "shape": [-1, 784]},
        {"name": "latents", "datatype": "FP32", "shape": [-1, 8]},
    ]
    assert [(o["name"], o["datatype"], o["shape"]) for o in meta["outputs"]] == [
        ("latents", "FP32", [-1, 8]),
        ("reconstructions", "FP32", [-1, 784]),
        ("reconstructions_uint8", "UINT8", [-1, 784]),
        ("mse", "FP32", [-1]),
        ("images", "FP32", [-1, 784]),
        ("images_uint8", "UINT8", [-1, 784]),
    ]
    assert "UINT8 0-255" in meta["parameters"]["input images"]
    assert meta["parameters"]["latent_size"] == 8


def test_versions_are_numbers_or_aliases_and_default_to_stable(client: TestClient) -> None:
    def answered(path: str) -> str:
        return str(client.get(path).json()["parameters"]["version"])

    assert answered("/v2/models/mlp2-p2") == "2"  # stable (the store's alias) is the latest here
    versions = ("1", "2", "stable", "latest")
    assert [answered(f"/v2/models/mlp2-p2/versions/{v}") for v in versions] == ["1", "2", "2", "2"]
    meta = client.get("/v2/models/mlp2-p2/versions/1").json()
    assert meta["versions"] == ["1", "2"] and meta["parameters"]["stable"] == "2"
    for version in ("0", "3", "x", "-1", "²"):
        _error(client.get(f"/v2/models/mlp2-p2/versions/{version}"), 404, "mlp2-p2", "has no version")
    _error(client.get("/v2/models/nope"), 404, "unknown model 'nope'", "available: mlp2-p2, mlp2-p8")
    _error(client.get("/v2/models/Not_A_Name"), 400, "invalid model name")
    header, _ = _infer(client, ("latents", np.zeros((1, 2), np.float32)), path="/v2/models/mlp2-p2/versions/1/infer")
    assert header["model_version"] == "1"


def test_unknown_v2_endpoints_are_protocol_errors(client: TestClient) -> None:
    _error(client.get("/v2/systemsharedmemory/status"), 404, "no such endpoint")
    _error(client.post("/v2/models/mlp2-p2/generate", json={}), 404, "no such endpoint")


# --------------------------------------------------------------------------------- inference


def test_json_inference_equals_the_rest_api(client: TestClient, digits: np.ndarray) -> None:
    rest = client.post("/reconstruct", json={"images": digits[:3].tolist()}).json()
    header, out = _infer(client, ("images", digits[:3]), id="req-7")
    assert (header["id"], header["model_name"], header["model_version"]) == ("req-7", "mlp2-p2", "2")
    assert list(out) == ["latents", "reconstructions", "mse"]  # the defaults for images, in the metadata's order
    np.testing.assert_allclose(out["reconstructions"], rest["reconstructions"], atol=1e-6)
    np.testing.assert_allclose(out["mse"], rest["mse"], rtol=1e-5)
    codes = client.post("/encode", json={"images": digits[:3].tolist()}).json()["latents"]
    np.testing.assert_allclose(out["latents"], codes, atol=1e-5)
    decoded = client.post("/decode", json={"latents": codes}).json()["images"]
    _, out = _infer(client, ("latents", np.asarray(codes, np.float32)))
    assert list(out) == ["images"]
    np.testing.assert_allclose(out["images"], decoded, atol=1e-6)


def test_binary_inference_equals_the_rest_api_raw(client: TestClient, digits: np.ndarray) -> None:
    pixels = np.rint(digits[:4] * 255).astype(np.uint8)
    raw = client.post("/reconstruct", content=pixels.tobytes(), headers=OCTETS).content
    header, out = _infer(client, ("images", pixels), binary=True, outputs=[("reconstructions_uint8", True)])
    assert header["outputs"][0]["parameters"] == {"binary_data_size": 4 * 784}
    assert out["reconstructions_uint8"].tobytes() == raw
    raw_codes = client.post("/encode", content=pixels.tobytes(), headers=OCTETS).content
    _, out = _infer(client, ("images", pixels.reshape(4, 28, 28)), binary=True, outputs=[("latents", True)])
    assert out["latents"].tobytes() == raw_codes
    codes = np.frombuffer(raw_codes, np.float32).reshape(4, 2)
    raw_images = client.post("/decode", content=codes.tobytes(), headers=OCTETS).content
    _, out = _infer(client, ("latents", codes), binary=True, outputs=[("images_uint8", True), ("images", True)])
    assert out["images_uint8"].tobytes() == raw_images
    np.testing.assert_array_equal(np.clip(np.rint(out["images"] * 255), 0, 255).astype(np.uint8), out["images_uint8"])


def test_binary_responses_follow_the_extension(client: TestClient, digits: np.ndarray) -> None:
    body, headers = request([("images", digits[:2])], binary=True, parameters={"binary_data_output": True})
    response = client.post(INFER, content=body, headers=headers)
    assert response.headers["content-type"] == "application/octet-stream"
    header, _ = read(response.content, response.headers["inference-header-content-length"])
    assert [o["parameters"]["binary_data_size"] for o in header["outputs"]] == [2 * 2 * 4, 2 * 784 * 4, 2 * 4]
    # per output, binary_data overrides binary_data_output; all JSON: no header, a JSON body
    outputs: list[str | tuple[str, bool]] = [("mse", False), ("latents", True)]
    header, _ = _infer(client, ("images", digits[:2]), outputs=outputs, parameters={"binary_data_output": True})
    assert "data" in header["outputs"][0] and header["outputs"][1]["parameters"]["binary_data_size"] == 16
    response = client.post(INFER, content=request([("images", digits[:2])], outputs=["mse"])[0])
    assert response.headers["content-type"] == "application/json"
    assert "inference-header-content-length" not in response.headers


@pytest.mark.parametrize(
    ("outputs", "what"),
    [
        (["latents"], "encode"),
        (["reconstructions"], "reconstruct"),
        (["reconstructions_uint8"], "reconstruct_pixels"),
        (["mse", "reconstructions"], "reconstruct_mse"),
        (["reconstructions", "reconstructions_uint8"], "reconstruct"),
        (["latents", "mse"], "reconstruct_all"),
        (["reconstructions_uint8", "latents"], "reconstruct_all"),
        (None, "reconstruct_all"),  # the default outputs: latents, reconstructions, mse
    ],
)
def test_each_request_runs_one_pass_of_what_its_outputs_need(
    client: TestClient, digits: np.ndarray, monkeypatch: pytest.MonkeyPatch, outputs: list[str] | None, what: str
) -> None:
    batcher = client.app.state.catalog.resolve("mlp2-p2", None).batcher  # type: ignore[attr-defined]
    seen: list[str] = []
    submit = batcher.submit
    monkeypatch.setattr(batcher, "submit", lambda what, rows: seen.append(str(what)) or submit(what, rows))
    _, out = _infer(client, ("images", digits[:2]), outputs=outputs)
    assert list(out) == (outputs or ["latents", "reconstructions", "mse"]) and seen == [what]
    assert all(len(array) == 2 for array in out.values())


def test_nested_json_data_and_uint8_json(client: TestClient, digits: np.ndarray) -> None:
    pixels = np.rint(digits[:2] * 255).astype(np.uint8)
    flat = _infer(client, ("images", pixels), outputs=["latents"])[1]["latents"]
    nested = pixels.reshape(2, 28, 28).tolist()
    nested_input = {"name": "images", "shape": [2, 28, 28], "datatype": "UINT8", "data": nested}
    body = orjson.dumps({"inputs": [nested_input], "outputs": [{"name": "latents"}]})
    from_nested = read(client.post(INFER, content=body).content, None)[1]["latents"]
    np.testing.assert_array_equal(flat, from_nested)
    as_floats = _infer(client, ("images", pixels.astype(np.float32) / 255), outputs=["latents"])[1]["latents"]
    np.testing.assert_allclose(flat, as_floats, atol=1e-6)


def test_gzip_and_deflate_bodies(client: TestClient, digits: np.ndarray) -> None:
    body, headers = request([("images", digits[:1])], binary=True, outputs=["mse"])
    plain = client.post(INFER, content=body, headers=headers).json()
    zipped = client.post(INFER, content=gzip.compress(body), headers=headers | {"content-encoding": "gzip"})
    assert zipped.json() == plain
    _error(client.post(INFER, content=b"not gzip", headers={"content-encoding": "gzip"}), 400, "not valid gzip")
    _error(client.post(INFER, content=body, headers={"content-encoding": "br"}), 415, "'br'")


def test_a_repeated_header_is_parsed_once_and_its_tensors_read_anew(client: TestClient, digits: np.ndarray) -> None:
    pixels = np.rint(digits[:4] * 255).astype(np.uint8)
    parse.cache_clear()
    for rows in (pixels[:2], pixels[2:]):  # the same header, other pixels
        raw = client.post("/reconstruct", content=rows.tobytes(), headers=OCTETS).content
        _, out = _infer(client, ("images", rows), binary=True, outputs=[("reconstructions_uint8", True)])
        assert out["reconstructions_uint8"].tobytes() == raw
    assert (parse.cache_info().hits, parse.cache_info().misses) == (1, 1)
    _infer(client, ("images", digits[:2]), outputs=["mse"])  # JSON data: never cached
    assert parse.cache_info().currsize == 1


@pytest.mark.anyio
async def test_inference_takes_the_infer_lane_and_answers_as_the_router_would(
    configure: Callable[..., Settings],
) -> None:
    app = create_app(configure())
    lanes = [m for m in app.user_middleware if m.cls is InferLane]
    assert len(lanes) == 1 and app.user_middleware[-1] is lanes[0]  # the innermost: inside metrics
    app.user_middleware.remove(lanes[0])
    stack = FastAPI.build_middleware_stack(app)  # the app without the lane: V2 requests through the router
    app.user_middleware.append(lanes[0])

    async def by_router(scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = app  # as the app sets it before its stack
        await stack(scope, receive, send)

    ones = np.full((1, 784), 0.5, np.float32)
    requests = [
        (200, INFER, *request([("images", ones)], binary=True)),
        (200, "/v2/models/mlp2-p8/versions/1/infer", *request([("latents", np.zeros((1, 8), np.float32))])),
        (200, "/v2/models/mlp2-p2/versions/stable/infer", *request([("images", ones)], outputs=["latents"])),
        (400, INFER, b"{", {}),
        (404, "/v2/models/nope/infer", b"{}", {}),
    ]
    async with LifespanManager(app):  # one lifespan, two ways in (each request with a scope state of its own)
        lane = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
        router = httpx.AsyncClient(transport=httpx.ASGITransport(app=by_router), base_url="http://test")
        async with lane, router:
            for status, path, body, headers in requests:
                one, other = [await client.post(path, content=body, headers=headers) for client in (lane, router)]
                assert one.status_code == status, one.text
                assert (one.status_code, one.headers, one.content) == (other.status_code, other.headers, other.content)
            metrics = (await lane.get("/metrics")).text
    assert 'ae_requests_total{endpoint="/v2/models/{name}/infer",model="mlp2-p2",status="200"} 2.0' in metrics
