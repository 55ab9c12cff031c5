"""The protocol's extensions for Triton's tools: model configuration, statistics, the model repository; and metrics."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient
from v2_tensors import request

from service.app import create_app
from service.settings import Settings

INFER = "/v2/models/mlp2-p2/infer"


def test_model_configuration_has_the_real_batching(configure: Callable[..., Settings]) -> None:
    with TestClient(create_app(configure(max_batch_size=64, max_delay_ms=1.5, max_images_per_request=100))) as client:
        config = client.get("/v2/models/mlp2-p2/config").json()
        assert config == client.get("/v2/models/mlp2-p2/versions/1/config").json()
    assert config["name"] == "mlp2-p2" and config["max_batch_size"] == 64
    assert config["dynamic_batching"] == {"max_queue_delay_microseconds": 1500}
    assert config["version_policy"] == {"specific": {"versions": [1, 2]}}
    assert config["input"][1] == {"name": "latents", "data_type": "TYPE_FP32", "dims": [2], "optional": True}
    assert config["output"][3] == {"name": "mse", "data_type": "TYPE_FP32", "dims": [1], "reshape": {"shape": []}}
    assert config["instance_group"][0]["kind"] == "KIND_CPU"
    assert config["parameters"]["max_images_per_request"] == {"string_value": "100"}


def test_statistics_count_passes_and_this_protocol_s_requests(client: TestClient, digits: np.ndarray) -> None:
    body, headers = request([("images", digits[:3])], binary=True, outputs=["mse"])
    for _ in range(2):
        assert client.post(INFER, content=body, headers=headers).status_code == 200
    assert client.post("/v2/models/mlp2-p2/versions/2/infer", content=b"{}").status_code == 400
    assert client.post("/encode", json={"images": digits[:1].tolist()}).status_code == 200  # REST: passes only
    stats = client.get("/v2/models/mlp2-p2/versions/2/stats").json()["model_stats"]
    assert len(stats) == 1
    entry = stats[0]
    assert (entry["name"], entry["version"]) == ("mlp2-p2", "2")
    assert (entry["inference_count"], entry["execution_count"]) == (7, 3)  # images and forward passes
    success, fail = entry["inference_stats"]["success"], entry["inference_stats"]["fail"]
    assert (success["count"], fail["count"]) == (2, 1) and success["ns"] > 0 and fail["ns"] > 0
    assert entry["last_inference"] > 1.7e12  # ms since the epoch
    every = client.get("/v2/models/mlp2-p2/stats").json()["model_stats"]
    assert [(e["name"], e["version"]) for e in every] == [("mlp2-p2", "1"), ("mlp2-p2", "2")]
    everything = client.get("/v2/models/stats").json()["model_stats"]
    assert {(e["name"], e["version"]) for e in everything} == {("mlp2-p2", "1"), ("mlp2-p2", "2"), ("mlp2-p8", "1")}
    assert client.get("/v2/models/nope/stats").status_code == 404


def test_v2_requests_are_in_the_metrics_by_route_and_model(client: TestClient, digits: np.ndarray) -> None:
    body, headers = request([("images", digits[:1])], binary=True)
    assert client.post(INFER, content=body, headers=headers).status_code == 200
    assert client.post("/v2/models/mlp2-p8/versions/1/infer", content=b"[").status_code == 400
    text = client.get("/metrics").text
    assert 'ae_requests_total{endpoint="/v2/models/{name}/infer",model="mlp2-p2",status="200"} 1.0' in text
    versioned = "/v2/models/{name}/versions/{version}/infer"
    assert f'ae_requests_total{{endpoint="{versioned}",model="mlp2-p8",status="400"}} 1.0' in text


def _index(client: TestClient, **body: object) -> list[dict[str, str]]:
    response = client.post("/v2/repository/index", json=body or None)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_repository_follows_the_store(configure: Callable[..., Settings], store_root: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(store_root, store, ignore=lambda folder, names: ["mlp2-p8"] if Path(folder) == store_root else [])
    with TestClient(create_app(configure(store=store, reload_interval=0, max_loaded_versions=1))) as client:
        index = {(e["name"], e["version"]): e for e in _index(client)}
        assert {key: e["state"] for key, e in index.items()} == {
            ("mlp1-p2", "1"): "UNAVAILABLE",  # broken
            ("mlp2-p2", "1"): "UNAVAILABLE",  # one version a model is loaded
            ("mlp2-p2", "2"): "READY",
        }
        assert "model.safetensors" in index["mlp1-p2", "1"]["reason"]
        assert "at most 1 versions a model" in index["mlp2-p2", "1"]["reason"]
        assert [(e["name"], e["version"]) for e in _index(client, ready=True)] == [("mlp2-p2", "2")]

        shutil.copytree(store_root / "mlp2-p8", store / "mlp2-p8")  # a new model in the store (reloads are off)
        assert client.get("/v2/models/mlp2-p8").status_code == 404
        loaded = client.post("/v2/repository/models/mlp2-p8/load")
        assert loaded.status_code == 200, loaded.text
        assert loaded.json() == {"name": "mlp2-p8", "versions": [1], "stable": 1, "latest": 1, "changed": True,
                                 "skipped": {}}  # fmt: skip
        assert client.get("/v2/models/mlp2-p8/ready").status_code == 200
        again = client.post("/v2/repository/models/mlp2-p8/load").json()
        assert again["changed"] is False

        failed = client.post("/v2/repository/models/mlp1-p2/load")
        assert failed.status_code == 400 and "failed to load 'mlp1-p2'" in failed.json()["error"]
        assert client.post("/v2/repository/models/nope/load").status_code == 404
        refused = client.post("/v2/repository/models/mlp2-p2/unload", json={"parameters": {"unload_dependents": False}})
        assert refused.status_code == 400 and "the store decides what is served" in refused.json()["error"]
        assert client.get("/v2/models/mlp2-p2/ready").status_code == 200
        with_config = client.post("/v2/repository/models/mlp2-p2/load", json={"parameters": {"config": "{}"}})
        assert with_config.status_code == 400 and "come from the store" in with_config.json()["error"]
        assert client.post("/v2/repository/index", json={"ready": "yes"}).status_code == 400
