"""The Open Inference Protocol against a real server, spoken by Triton's own client (tritonclient.http).

What a platform or a Triton tool would do: server and model metadata, readiness, configuration,
statistics, the repository, inference in JSON and in binary for the three operations; each result
equal to the REST API's for the same input on the same server; and the client's errors.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
import tritonclient.http as triton
from liveserver import REPO, LiveServer, live_server
from tritonclient.utils import InferenceServerException

pytestmark = pytest.mark.slow  # a live server

OCTETS = {"content-type": "application/octet-stream", "accept": "application/octet-stream"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, store_root: Path) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("v2"), store_root, default_model="mlp2-p2") as running:
        yield running


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Iterator[triton.InferenceServerClient]:
    with triton.InferenceServerClient(url=f"127.0.0.1:{server.port}") as connected:
        yield connected


@pytest.fixture(scope="module")
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as connected:
        yield connected


def _input(name: str, array: np.ndarray, binary: bool) -> triton.InferInput:
    tensor = triton.InferInput(name, list(array.shape), "UINT8" if array.dtype == np.uint8 else "FP32")
    return tensor.set_data_from_numpy(array, binary_data=binary)


def _outputs(names: list[str], binary: bool) -> list[triton.InferRequestedOutput]:
    return [triton.InferRequestedOutput(name, binary_data=binary) for name in names]


def test_metadata_readiness_configuration_and_repository(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("mlp2-p2") and client.is_model_ready("mlp2-p2", "1")
    assert not client.is_model_ready("mlp2-p2", "9") and not client.is_model_ready("nope")
    server = client.get_server_metadata()
    assert server["name"] == "mnist-autoencoders" and "binary_tensor_data" in server["extensions"]
    model = client.get_model_metadata("mlp2-p8", "latest")
    assert (model["name"], model["versions"]) == ("mlp2-p8", ["1"])
    assert {t["name"]: t["shape"] for t in model["inputs"]} == {"images": [-1, 784], "latents": [-1, 8]}
    config = client.get_model_config("mlp2-p2")
    assert config["max_batch_size"] == 1024 and "dynamic_batching" in config
    index = {(entry["name"], entry["version"]): entry["state"] for entry in client.get_model_repository_index()}
    assert index[("mlp2-p2", "2")] == "READY" and index[("mlp1-p2", "1")] == "UNAVAILABLE"
    client.load_model("mlp2-p2")  # re-reads the store: nothing changed, nothing to say
    with pytest.raises(InferenceServerException, match="the store decides what is served") as refused:
        client.unload_model("mlp2-p2")
    assert refused.value.status() == "400"


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_inference_equals_the_rest_api(
    client: triton.InferenceServerClient, http: httpx.Client, digits: np.ndarray, binary: bool
) -> None:
    pixels = np.rint(digits[:5] * 255).astype(np.uint8)
    images = pixels.astype(np.float32) / 255
    # encode
    result = client.infer("mlp2-p2", [_input("images", images, binary)], outputs=_outputs(["latents"], binary))
    codes = result.as_numpy("latents")
    rest = np.asarray(http.post("/encode", json={"images": images.tolist()}).json()["latents"], np.float32)
    np.testing.assert_allclose(codes, rest, atol=1e-5)
    # reconstruct, floats with their MSEs (as the REST API's JSON) and uint8 (as its raw bytes)
    wanted = _outputs(["reconstructions", "mse"], binary)
    result = client.infer("mlp2-p2", [_input("images", images, binary)], outputs=wanted, request_id="r1")
    assert result.get_response()["id"] == "r1" and result.get_response()["model_version"] == "2"
    rest_json = http.post("/reconstruct", json={"images": images.tolist()}).json()
    np.testing.assert_allclose(result.as_numpy("reconstructions"), rest_json["reconstructions"], atol=1e-6)
    np.testing.assert_allclose(result.as_numpy("mse"), rest_json["mse"], rtol=1e-5)
    wanted = _outputs(["reconstructions_uint8"], binary)
    result = client.infer("mlp2-p2", [_input("images", pixels.reshape(5, 28, 28), binary)], outputs=wanted)
    rest_raw = http.post("/reconstruct", content=pixels.tobytes(), headers=OCTETS).content
    assert result.as_numpy("reconstructions_uint8").tobytes() == rest_raw
    # decode
    result = client.infer("mlp2-p2", [_input("latents", codes, binary)], outputs=_outputs(["images"], binary))
    rest = http.post("/decode", json={"latents": codes.tolist()}).json()["images"]
    np.testing.assert_allclose(result.as_numpy("images"), rest, atol=1e-6)
    result = client.infer("mlp2-p2", [_input("latents", codes, binary)], outputs=_outputs(["images_uint8"], binary))
    assert result.as_numpy("images_uint8").tobytes() == http.post("/decode", content=codes.tobytes(),
                                                                     headers=OCTETS).content  # fmt: skip


def test_default_outputs_versions_and_compression(client: triton.InferenceServerClient, digits: np.ndarray) -> None:
    # without outputs the client asks for every output in binary: images give latents, reconstructions and mse
    result = client.infer("mlp2-p2", [_input("images", digits[:3], True)], model_version="1")
    response = result.get_response()
    assert response["model_version"] == "1"
    assert [o["name"] for o in response["outputs"]] == ["latents", "reconstructions", "mse"]
    assert all("binary_data_size" in o["parameters"] for o in response["outputs"])
    assert result.as_numpy("latents").shape == (3, 2) and result.as_numpy("mse").shape == (3,)
    plain = client.infer("mlp2-p2", [_input("images", digits[:3], True)], outputs=_outputs(["mse"], True))
    zipped = client.infer("mlp2-p2", [_input("images", digits[:3], True)], outputs=_outputs(["mse"], True),
                          request_compression_algorithm="gzip")  # fmt: skip
    np.testing.assert_array_equal(plain.as_numpy("mse"), zipped.as_numpy("mse"))
    stats = client.get_inference_statistics("mlp2-p2", "1")["model_stats"][0]
    assert stats["inference_stats"]["success"]["count"] >= 1 and stats["inference_count"] >= 3


def test_the_client_s_errors(client: triton.InferenceServerClient, digits: np.ndarray) -> None:
    images = [_input("images", digits[:1], True)]
    cases = [
        (lambda: client.infer("nope", images), "404", "unknown model 'nope'"),
        (lambda: client.infer("mlp2-p2", images, model_version="9"), "404", "no version 9"),
        (lambda: client.get_model_metadata("nope"), "404", "unknown model"),
        (lambda: client.infer("mlp2-p2", [_input("images", digits[:1, :100], True)]), "400", "shape [1, 100]"),
        (lambda: client.infer("mlp2-p2", images, outputs=_outputs(["codes"], True)), "400", "output 'codes'"),
        (lambda: client.infer("mlp2-p2", [_input("latents", np.full((1, 2), 1e30, np.float32), False)]), "400",
         "too far outside"),
        (lambda: client.infer("mlp2-p2", images, sequence_id=5), "400", "sequence batching is not supported"),
        (lambda: client.get_system_shared_memory_status(), "404", "no such endpoint"),
    ]  # fmt: skip
    for call, status, fragment in cases:
        with pytest.raises(InferenceServerException) as raised:
            call()
        assert (raised.value.status(), fragment in str(raised.value.message())) == (status, True), raised.value


def test_bad_payloads_over_http(http: httpx.Client) -> None:
    header = orjson.dumps({"inputs": [{"name": "images", "shape": [1, 784], "datatype": "UINT8",
                                       "parameters": {"binary_data_size": 784}}]})  # fmt: skip
    length = {"inference-header-content-length": str(len(header))}
    cases = [
        (header + bytes(700), length, "only 700 bytes"),  # fewer bytes than the header declares
        (header + bytes(784), {"inference-header-content-length": str(len(header) + 4)}, "malformed JSON"),
        (b'{"inputs": [{"name": "images", "shape": [1, 784]', {}, "malformed JSON"),
        (b'{"id": "x"}', {}, "'inputs' must be a non-empty list"),
        (orjson.dumps({"inputs": [{"name": "images", "shape": [1, 784], "datatype": "FP64", "data": [0] * 784}]}), {},
         "must be FP32 or UINT8"),
    ]  # fmt: skip
    for body, headers, fragment in cases:
        response = http.post("/v2/models/mlp2-p2/infer", content=body, headers=headers)
        assert response.status_code == 400 and fragment in response.json()["error"], response.text


def test_the_readme_examples_work_as_written(tmp_path: Path) -> None:
    """The README's curl commands and tritonclient snippet, run as written against the shipped models."""
    readme = (REPO / "README.md").read_text()
    tour = re.search(r"<!-- v2-tour:start -->\s*```bash\n(.*?)```", readme, re.DOTALL)
    snippet = re.search(r"<!-- v2-python:start -->\s*```python\n(.*?)```", readme, re.DOTALL)
    assert tour and snippet, "README.md lacks the V2 examples between their markers"
    env = {key: value for key, value in os.environ.items() if "proxy" not in key.lower()}
    with live_server(tmp_path, REPO / "checkpoints") as live:
        script = tour.group(1).replace("http://127.0.0.1:8000", live.url)
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, env=env,
                              timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stderr
        namespace: dict[str, Any] = {}
        exec(snippet.group(1).replace("127.0.0.1:8000", f"127.0.0.1:{live.port}"), namespace)
    status, printed = done.stdout.split("\n", 1)
    decoder, values = json.JSONDecoder(), []
    while printed.strip():
        value, end = decoder.raw_decode(printed.strip())
        values.append(value)
        printed = printed.strip()[end:]
    metadata, decoded, encoded = values
    assert status == "200" and metadata["name"] == "mlp2-p2"
    assert decoded["outputs"][0]["shape"] == [1, 784] and len(decoded["outputs"][0]["data"]) == 784
    assert encoded["model_name"] == "mlp2-p16" and encoded["outputs"][0]["shape"] == [1, 16]
    assert namespace["codes"].shape == (2, 16) and namespace["digits"].shape == (2, 784)
