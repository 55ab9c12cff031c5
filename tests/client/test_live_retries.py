"""Retries against real servers: a 503 from a full queue (Retry-After honoured, up to the cap, then Overloaded),
a job that meets 503s under load and still comes back whole, a server not yet listening (connection
errors, retried until it is), and one that never listens (ConnectionFailed)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from clientsupport import SHIPPED, encode_in_process, requests_seen
from liveserver import LiveServer, live_server

from aeclient import AsyncClient, Client, ConnectionFailed, Overloaded, Retry
from bench.launch import environment, free_port, service_command, spawn

pytestmark = pytest.mark.slow  # live servers, browsers, benchmark or long training runs: make test-fast skips them

QUEUE = 64  # images queued per model version before 503


@pytest.fixture(scope="module")
def busy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server whose queue holds 64 images, each forward pass one image: a request of 64 keeps it full for a while,
    one of 128 never fits."""
    settings = {"queue_size": QUEUE, "max_images_per_request": 2 * QUEUE, "max_batch_size": 1, "reload_interval": 0}
    with live_server(tmp_path_factory.mktemp("client-busy"), SHIPPED, **settings) as running:
        yield running


def test_a_503_is_retried_after_retry_after_then_raised_as_overloaded(busy: LiveServer,
                                                                      test_digits: np.ndarray) -> None:  # fmt: skip
    before = requests_seen(busy, "/encode", 503)
    started = time.monotonic()
    with Client(busy.url, retry=Retry(attempts=3)) as client, pytest.raises(Overloaded) as caught:
        client.encode(test_digits[: 2 * QUEUE])  # more than the queue holds: every attempt is a 503
    waited = time.monotonic() - started
    assert requests_seen(busy, "/encode", 503) - before == 3
    assert caught.value.status == 503 and caught.value.code == "overloaded" and caught.value.retry_after == 1.0
    assert 2.0 <= waited < 10, f"two waits of Retry-After (1 s) each took {waited:.2f} s"


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_job_that_meets_503s_under_load_comes_back_whole(busy: LiveServer, test_digits: np.ndarray,
                                                           shipped: Callable[[str], torch.nn.Module],
                                                           kind: str) -> None:  # fmt: skip
    images = test_digits[: 8 * QUEUE]
    statuses: list[int] = []
    retry = Retry(attempts=20, backoff=0.3)
    options = {"model": "mlp2-p2", "chunk_size": QUEUE, "concurrency": 4, "retry": retry}
    before = requests_seen(busy, "/encode", 503)
    if kind == "sync":
        hooks = {"response": [lambda response: statuses.append(response.status_code)]}
        with httpx.Client(event_hooks=hooks, timeout=30) as http, Client(busy.url, http=http, **options) as client:
            codes = client.encode(images)
    else:

        async def record(response: httpx.Response) -> None:
            statuses.append(response.status_code)

        async def run() -> np.ndarray:
            async with httpx.AsyncClient(event_hooks={"response": [record]}, timeout=30) as http:
                return await AsyncClient(busy.url, http=http, **options).encode(images)

        import asyncio

        codes = asyncio.run(run())
    np.testing.assert_allclose(codes, encode_in_process(shipped("mlp2-p2"), images), atol=1e-5)
    assert statuses.count(200) == 1 + 8, statuses  # GET /models, then one 200 per chunk
    assert statuses.count(503) >= 1, f"no 503 met: the test's load did not fill the queue ({statuses})"
    assert requests_seen(busy, "/encode", 503) - before == statuses.count(503)


def test_connection_errors_are_retried_until_the_server_listens(tmp_path: Path, test_digits: np.ndarray) -> None:
    store = tmp_path / "store"
    shutil.copytree(SHIPPED / "mlp2-p2", store / "mlp2-p2")
    port = free_port()
    retry = Retry(attempts=400, backoff=0.05, max_wait=0.25)  # up to about 100 s for the server to start
    env = environment({"AE_DEVICE": "cpu", "AE_DEFAULT_MODEL": "mlp2-p2", "AE_RELOAD_INTERVAL": "0"})
    server = LiveServer(spawn(service_command(port, store), tmp_path / "server.log", env, cwd=tmp_path), port,
                        tmp_path / "server.log")  # fmt: skip
    try:
        with Client(server.url, retry=retry) as client:
            codes = client.encode(test_digits[:3])  # sent at once: nothing listens yet
        assert codes.shape == (3, 2)
        assert "Application startup complete" in server.log()
    finally:
        server.stop(20)


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_server_that_never_listens_raises_connection_failed(kind: str, test_digits: np.ndarray) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    retry = Retry(attempts=3, backoff=0.01)
    with pytest.raises(ConnectionFailed) as caught:
        if kind == "sync":
            with Client(url, retry=retry) as client:
                client.encode(test_digits[:1])
        else:
            import asyncio

            asyncio.run(AsyncClient(url, retry=retry).encode(test_digits[:1]))
    assert caught.value.attempts == 3 and "ConnectError" in str(caught.value)
    with Client(url) as client:
        assert client.health() is False
