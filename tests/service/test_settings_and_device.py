"""API key, CORS, settings from the environment, and the device the models run on."""

from __future__ import annotations

import gc
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from liveserver import TEST_DEVICE

from service.app import create_app
from service.core import LARGE_PASS, on_torch_threads
from service.settings import Settings

ONE = {"images": [[0.2] * 784]}


@pytest.fixture
def secured(configure: Callable[..., Settings]):  # type: ignore[no-untyped-def]
    with TestClient(create_app(configure(api_key="s3cret"))) as client:
        yield client


def test_api_key_is_required_everywhere_but_health(secured: TestClient) -> None:
    for method, path in [("post", "/encode"), ("get", "/models"), ("get", "/latent-map"), ("get", "/metrics")]:
        response = secured.request(method, path, json=ONE)
        assert response.status_code == 401, path
        assert response.json()["error"]["code"] == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"
    assert secured.post("/encode", json=ONE, headers={"authorization": "Bearer wrong"}).status_code == 401
    assert secured.post("/encode", json=ONE, headers={"authorization": "Basic s3cret"}).status_code == 401
    assert secured.post("/encode", json=ONE, headers={"authorization": "Bearer s3cret"}).status_code == 200
    assert secured.get("/healthz").status_code == 200
    assert secured.get("/readyz").status_code == 200


def test_without_a_key_nothing_is_asked(client: TestClient) -> None:
    assert client.post("/encode", json=ONE).status_code == 200


def test_cors_origins(configure: Callable[..., Settings]) -> None:
    app = create_app(configure(cors_origins=["http://localhost:5173"]))
    with TestClient(app) as client:
        preflight = client.options(
            "/encode",
            headers={"origin": "http://localhost:5173", "access-control-request-method": "POST"},
        )
        assert preflight.headers["access-control-allow-origin"] == "http://localhost:5173"


def test_settings_come_from_ae_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AE_MAX_BATCH_SIZE", "32")
    monkeypatch.setenv("AE_API_KEY", "topsecret-key")
    monkeypatch.setenv("AE_CORS_ORIGINS", '["http://a.example"]')
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.max_batch_size == 32
    assert settings.api_key is not None and settings.api_key.get_secret_value() == "topsecret-key"
    assert settings.cors_origins == ["http://a.example"]
    assert "topsecret-key" not in repr(settings)  # the key never reaches logs


def test_auto_device_falls_back_to_the_cpu(configure: Callable[..., Settings]) -> None:
    with TestClient(create_app(configure(device="auto"))) as client:
        catalog = client.app.state.catalog  # type: ignore[attr-defined]
        expected = "cuda" if torch.cuda.is_available() else "cpu"
        assert {served.device.type for served in catalog} == {expected}
        assert client.post("/encode", json=ONE).status_code == 200


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised when CUDA is missing")
def test_asking_for_cuda_without_a_gpu_fails_at_start(configure: Callable[..., Settings]) -> None:
    with pytest.raises(RuntimeError, match="CUDA is not available"), TestClient(create_app(configure(device="cuda"))):
        pass


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_serves_what_the_cpu_serves(configure: Callable[..., Settings], digits: np.ndarray) -> None:
    body = {"images": digits.tolist()}
    with TestClient(create_app(configure(device="cpu"))) as cpu:
        on_cpu = cpu.post("/reconstruct", json=body).json()
    with TestClient(create_app(configure(device="cuda"))) as gpu:
        assert {s.device.type for s in gpu.app.state.catalog} == {"cuda"}  # type: ignore[attr-defined]
        on_gpu = gpu.post("/reconstruct", json=body).json()
    np.testing.assert_allclose(on_gpu["reconstructions"], on_cpu["reconstructions"], atol=1e-4)


def test_batch_delay_defaults_by_device() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.batch_delay(torch.device("cpu")) == 0.0
    assert settings.batch_delay(torch.device("cuda")) == 0.002
    explicit = Settings(_env_file=None, max_delay_ms=5)  # type: ignore[call-arg]
    assert explicit.batch_delay(torch.device("cpu")) == explicit.batch_delay(torch.device("cuda")) == 0.005


def test_forward_workers_default_by_device() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (settings.workers(torch.device("cpu")), settings.workers(torch.device("cuda"))) == (2, 1)
    explicit = Settings(_env_file=None, forward_workers=3)  # type: ignore[call-arg]
    assert explicit.workers(torch.device("cpu")) == explicit.workers(torch.device("cuda")) == 3


@pytest.mark.parametrize(("cores", "workers", "threads"), [(16, 1, 15), (16, 2, 7), (2, 2, 1), (2, 1, 1), (1, 2, 1)])
def test_large_passes_share_the_cores_but_one_among_the_workers(
    monkeypatch: pytest.MonkeyPatch, cores: int, workers: int, threads: int
) -> None:
    monkeypatch.setattr(torch, "get_num_threads", lambda: cores)
    assert Settings(_env_file=None).large_pass_threads(workers) == threads  # type: ignore[call-arg]
    assert Settings(_env_file=None, torch_threads=3).large_pass_threads(workers) == 3  # type: ignore[call-arg]


def test_small_passes_run_on_one_torch_thread_large_ones_on_the_setting() -> None:
    seen: list[int] = []

    def forward(kind: str, parts: list[np.ndarray]) -> dict[str, np.ndarray]:
        seen.append(torch.get_num_threads())
        return {}

    run = on_torch_threads(forward, 3)
    small, large = [np.zeros((LARGE_PASS - 1, 4))], [np.zeros((LARGE_PASS // 2, 4))] * 2
    with ThreadPoolExecutor(1) as pool:  # as in the service: its own thread, whose count it sets
        for parts in (small, large, small):
            pool.submit(run, "encode", parts).result()
    assert seen == [1, 3, 1]


def test_the_forward_thread_serves_with_the_configured_threads(configure: Callable[..., Settings]) -> None:
    # one worker thread, so that the pool's next call runs where the last pass ran
    with TestClient(create_app(configure(torch_threads=2, forward_workers=1))) as client:
        assert client.post("/encode", json={"images": [[0.5] * 784] * LARGE_PASS}).status_code == 200
        pool = client.app.state.catalog.runtime.pool  # type: ignore[attr-defined]
        assert pool.submit(torch.get_num_threads).result() == 2  # the last pass was a large one
        assert client.post("/encode", json=ONE).status_code == 200
        assert pool.submit(torch.get_num_threads).result() == 1


def test_what_is_loaded_is_frozen_out_of_the_garbage_collectors_sight(configure: Callable[..., Settings]) -> None:
    gc.unfreeze()
    with TestClient(create_app(configure())) as client:
        assert client.get("/readyz").status_code == 200
        assert gc.get_freeze_count() > 0  # full collections under load no longer walk the models and torch
    gc.unfreeze()


def test_the_service_tests_serve_on_the_test_device(client: TestClient) -> None:
    """AE_TEST_DEVICE=cuda (scripts/cuda-check.sh) runs the service's tests on the GPU; by default the CPU."""
    assert {served.device.type for served in client.app.state.catalog} == {TEST_DEVICE}  # type: ignore[attr-defined]
