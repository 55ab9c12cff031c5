"""The Open Inference Protocol's errors: every bad request a clear 4xx in the spec's shape, the REST API's limits.

Each case names what is wrong; the message must say it (the body is `{"error": "<message>"}`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import httpx
import numpy as np
import orjson
import pytest
from asgi_lifespan import LifespanManager
from fastapi.testclient import TestClient
from v2_tensors import request

from service.app import create_app
from service.settings import Settings

INFER = "/v2/models/mlp2-p2/infer"


def _error(response, status: int, *fragments: str) -> str:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    message = response.json()["error"]
    assert isinstance(message, str)
    for fragment in fragments:
        assert fragment in message, message
    return message


ONE = np.full((1, 784), 0.5, np.float32)
FLOATS = {"name": "images", "shape": [1, 784], "datatype": "FP32"}
BAD = [  # (what is wrong, body, extra headers, status, fragments of the message)
    ("malformed JSON", b'{"inputs": [', {}, 400, ["malformed JSON"]),
    ("empty body", b"", {}, 400, ["malformed JSON"]),
    ("not an object", b"[1, 2]", {}, 400, ["must be a JSON object"]),
    ("no inputs", b'{"outputs": []}', {}, 400, ["'inputs' must be a non-empty list"]),
    ("unknown field", orjson.dumps({"inputs": [], "model": "x"}), {}, 400, ["unknown field", "'model'"]),
    ("unknown input", orjson.dumps({"inputs": [FLOATS | {"name": "pixels", "data": [0.5] * 784}]}), {}, 400,
     ["unknown input 'pixels'", "'images' or 'latents'"]),
    ("two inputs", orjson.dumps({"inputs": [FLOATS | {"data": [0.5] * 784},
                                            {"name": "latents", "shape": [1, 2], "datatype": "FP32", "data": [0, 0]}]}),
     {}, 400, ["exactly one input"]),
    ("repeated input", orjson.dumps({"inputs": [FLOATS | {"data": [0.5] * 784}] * 2}), {}, 400, ["more than once"]),
    ("wrong datatype", orjson.dumps({"inputs": [FLOATS | {"datatype": "INT32", "data": [0] * 784}]}), {}, 400,
     ["'images' must be FP32 or UINT8, not INT32"]),
    ("a boolean tensor", orjson.dumps({"inputs": [FLOATS | {"datatype": "BOOL", "data": [True] * 784}]}), {}, 400,
     ["'images' must be FP32 or UINT8, not BOOL"]),
    ("a half-precision tensor", orjson.dumps({"inputs": [FLOATS | {"datatype": "FP16", "data": [0.5] * 784}]}), {},
     400, ["'images' must be FP32 or UINT8, not FP16"]),
    ("unknown datatype", orjson.dumps({"inputs": [FLOATS | {"datatype": "BYTES", "data": ["a"]}]}), {}, 400,
     ["datatype 'BYTES' is not supported"]),
    ("wrong shape", orjson.dumps({"inputs": [FLOATS | {"shape": [1, 783], "data": [0.5] * 783}]}), {}, 400,
     ["shape [1, 783]", "[-1, 784] or [-1, 28, 28]"]),
    ("shape and data disagree", orjson.dumps({"inputs": [FLOATS | {"data": [0.5] * 783}]}), {}, 400,
     ["783 values in 'data' for shape [1, 784]"]),
    ("ragged data", orjson.dumps({"inputs": [FLOATS | {"data": [[0.5] * 784, [0.5]]}]}), {}, 400, ["'data' must be"]),
    ("text data", orjson.dumps({"inputs": [FLOATS | {"data": ["a"] * 784}]}), {}, 400, ["list of FP32 values"]),
    ("no data", orjson.dumps({"inputs": [FLOATS]}), {}, 400, ["has no data"]),
    ("pixels out of range", orjson.dumps({"inputs": [FLOATS | {"data": [2.0] * 784}]}), {}, 400,
     ["images[0] has values outside [0, 1]"]),
    ("uint8 out of range", orjson.dumps({"inputs": [FLOATS | {"datatype": "UINT8", "data": [256] * 784}]}), {}, 400,
     ["outside UINT8's range"]),
    ("empty batch", orjson.dumps({"inputs": [FLOATS | {"shape": [0, 784], "data": []}]}), {}, 400, ["empty batch"]),
    ("latents of the wrong size", orjson.dumps({"inputs": [{"name": "latents", "shape": [1, 3], "datatype": "FP32",
                                                            "data": [0, 0, 0]}]}), {}, 400, ["[-1, 2]"]),
    ("undecodable latents", orjson.dumps({"inputs": [{"name": "latents", "shape": [1, 2], "datatype": "FP32",
                                                      "data": [1e30, 0]}]}), {}, 400, ["latents[0] is too far"]),
    ("unknown output", orjson.dumps({"inputs": [FLOATS | {"data": [0.5] * 784}], "outputs": [{"name": "codes"}]}),
     {}, 400, ["output 'codes'", "unknown output", "latents, reconstructions, reconstructions_uint8, mse"]),
    ("an output of the other input", orjson.dumps({"inputs": [FLOATS | {"data": [0.5] * 784}],
                                                   "outputs": [{"name": "images"}]}),
     {}, 400, ["output 'images' cannot be given for input 'images' (it needs input 'latents')"]),
    ("repeated output", orjson.dumps({"inputs": [FLOATS | {"data": [0.5] * 784}],
                                      "outputs": [{"name": "mse"}, {"name": "mse"}]}), {}, 400, ["more than once"]),
    ("unknown request parameter", orjson.dumps({"inputs": [FLOATS | {"data": [0.5] * 784}],
                                                "parameters": {"temperature": 1}}), {}, 400,
     ["unknown parameter 'temperature'", "binary_data_output"]),
    ("sequence parameters", orjson.dumps({"inputs": [FLOATS | {"data": [0.5] * 784}],
                                          "parameters": {"sequence_id": 3}}), {}, 400, ["sequence batching"]),
    ("shared memory", orjson.dumps({"inputs": [FLOATS | {"parameters": {"shared_memory_region": "r"}}]}), {}, 400,
     ["shared-memory extensions are not supported"]),
    ("classification", orjson.dumps({"inputs": [FLOATS | {"data": [0.5] * 784}],
                                     "outputs": [{"name": "latents", "parameters": {"classification": 3}}]}), {}, 400,
     ["classification extension"]),
    ("binary_data_output not a flag", orjson.dumps({"inputs": [FLOATS | {"data": [0.5] * 784}],
                                                    "parameters": {"binary_data_output": "yes"}}), {}, 400,
     ["must be true or false"]),
    ("id not a string", orjson.dumps({"inputs": [FLOATS | {"data": [0.5] * 784}], "id": 7}), {}, 400,
     ["'id' must be a string"]),
]  # fmt: skip


def _binary(size: int, data: bytes, header_length: int | None = None) -> tuple[bytes, dict[str, str]]:
    header = orjson.dumps({"inputs": [FLOATS | {"parameters": {"binary_data_size": size}}]})
    length = len(header) if header_length is None else header_length
    return header + data, {"inference-header-content-length": str(length)}


BINARY_BAD = [  # (what is wrong, (body, headers), fragments)
    ("size disagrees with the shape", _binary(3136 - 4, bytes(3136 - 4)), ["binary_data_size 3132 disagrees",
                                                                           "[1, 784] of FP32 (3136 bytes)"]),
    ("fewer bytes than declared", _binary(3136, bytes(3000)), ["only 3000 bytes of binary data remain"]),
    ("more bytes than declared", _binary(3136, bytes(3140)), ["3140 bytes of binary data", "add up to 3136"]),
    ("header length past the body", _binary(3136, bytes(3136), header_length=10**6), ["within the body"]),
    ("header length cutting the JSON", _binary(3136, bytes(3136), header_length=20), ["malformed JSON"]),
    ("header length not a number", (b"{}", {"inference-header-content-length": "ten"}), ["'ten'"]),
    ("negative size", _binary(-1, b""), ["binary_data_size must be a byte count"]),
]  # fmt: skip


@pytest.mark.parametrize(("what", "body", "headers", "status", "fragments"), BAD, ids=[b[0] for b in BAD])
def test_bad_requests_are_clear_4xx(
    client: TestClient, what: str, body: bytes, headers: dict[str, str], status: int, fragments: list[str]
) -> None:
    _error(client.post(INFER, content=body, headers=headers), status, *fragments)


@pytest.mark.parametrize(("what", "sent", "fragments"), BINARY_BAD, ids=[b[0] for b in BINARY_BAD])
def test_bad_binary_requests_are_clear_400s(
    client: TestClient, what: str, sent: tuple[bytes, dict[str, str]], fragments: list[str]
) -> None:
    _error(client.post(INFER, content=sent[0], headers=sent[1]), 400, *fragments)


def test_data_and_binary_data_together_are_refused(client: TestClient) -> None:
    header = orjson.dumps({"inputs": [FLOATS | {"data": [0.5] * 784, "parameters": {"binary_data_size": 3136}}]})
    headers = {"inference-header-content-length": str(len(header))}
    response = client.post(INFER, content=header + bytes(3136), headers=headers)
    _error(response, 400, "both 'data' and parameters.binary_data_size")


@pytest.fixture
def strict(configure: Callable[..., Settings]) -> Iterator[TestClient]:
    with TestClient(create_app(configure(max_images_per_request=4, max_body_bytes=64 * 1024, api_key="k"))) as client:
        yield client


def test_the_rest_api_s_limits_and_api_key_apply(strict: TestClient) -> None:
    key = {"authorization": "Bearer k"}
    body, headers = request([("images", np.zeros((5, 784), np.uint8))], binary=True)
    _error(strict.post(INFER, content=body, headers=headers | key), 413, "5 rows of 'images'", "limit is 4")
    body, headers = request([("images", np.zeros((3, 784), np.float32))], binary=True)  # 9 KiB of floats: fine
    assert strict.post(INFER, content=body, headers=headers | key).status_code == 200
    _error(strict.post(INFER, content=bytes(65 * 1024), headers=key), 413, "exceeds the limit of 65536 bytes")
    for method, path in [("get", "/v2"), ("get", "/v2/models/mlp2-p2"), ("post", INFER), ("get", "/v2/models/stats"),
                         ("post", "/v2/repository/index"), ("get", "/v2/models/mlp2-p2/config")]:  # fmt: skip
        response = strict.request(method, path, content=body, headers=headers)
        _error(response, 401, "API key")
        assert response.headers["www-authenticate"] == "Bearer"
    assert strict.get("/v2/health/live").status_code == strict.get("/v2/health/ready").status_code == 200
    assert strict.get("/v2", headers=key).status_code == 200


@pytest.mark.anyio
async def test_a_full_queue_is_a_503_with_retry_after(configure: Callable[..., Settings]) -> None:
    app = create_app(configure(queue_size=4, max_batch_size=64, max_delay_ms=1000))
    two = request([("images", np.full((2, 784), 0.1, np.float32))], binary=True)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            waiting = [asyncio.ensure_future(client.post(INFER, content=two[0], headers=two[1])) for _ in range(2)]
            batcher = app.state.catalog.resolve("mlp2-p2", None).batcher
            while batcher.queued_images() < 4:  # both queued, waiting for the batch to fill or the delay
                await asyncio.sleep(0.005)
            refused = await client.post(INFER, content=two[0], headers=two[1])
            _error(refused, 503, "busy", "retry shortly")
            assert refused.headers["retry-after"] == "1"
            assert [r.status_code for r in await asyncio.gather(*waiting)] == [200, 200]


def test_json_requests_are_held_to_the_json_limit_and_large_ones_parsed_off_the_loop(
    configure: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As REST's JSON bodies: AE_MAX_JSON_BYTES, and a body over 64 KiB parsed in a decode thread."""
    import threading

    import service.routes.v2

    threads: list[str] = []
    real = service.routes.v2.parse_request

    def spy(body: bytes, header_length: str | None):  # type: ignore[no-untyped-def]
        threads.append(threading.current_thread().name)
        return real(body, header_length)

    monkeypatch.setattr(service.routes.v2, "parse_request", spy)
    images = np.full((40, 784), 0.123456789, np.float32)  # ten characters a value in JSON, four bytes in binary
    json_body, _ = request([("images", images)])
    binary_body, binary_headers = request([("images", images)], binary=True)
    assert len(json_body) > 64 * 1024 and len(binary_body) < len(json_body)
    with TestClient(create_app(configure(max_json_bytes=len(json_body) - 1))) as client:
        _error(client.post(INFER, content=json_body), 413, "AE_MAX_JSON_BYTES")
        assert client.post(INFER, content=binary_body, headers=binary_headers).status_code == 200  # not JSON
    with TestClient(create_app(configure())) as client:
        threads.clear()
        assert client.post(INFER, content=json_body).status_code == 200
        assert threads and threads[0].startswith("ae-decode")
        threads.clear()
        assert client.post(INFER, content=request([("images", ONE)])[0]).status_code == 200
        assert threads and not threads[0].startswith("ae-decode")  # small: on the loop
