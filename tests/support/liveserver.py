"""A real server for tests: `python -m service.cli` (uvicorn) on a free loopback port, started by bench.launch."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.launch import LOOPBACK, Server, ServerFailed, environment, free_port, service_command, spawn

__all__ = ["LOOPBACK", "REPO", "STOP_DEADLINE", "TEST_DEVICE", "LiveServer", "live_server"]

REPO = Path(__file__).resolve().parents[2]
START_DEADLINE = 90.0  # seconds for a server to answer /readyz 200 on a busy machine
STOP_DEADLINE = 20.0
# The service's device in its tests: the CPU, unless AE_TEST_DEVICE says otherwise (scripts/cuda-check.sh: cuda)
TEST_DEVICE = os.environ.get("AE_TEST_DEVICE", "cpu")


@dataclass
class LiveServer(Server):
    def client(self, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout, trust_env=False)

    def async_client(self, timeout: float = 30.0, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=timeout, trust_env=False, **kwargs)


@contextmanager
def live_server(workdir: Path, store: Path, **settings: object) -> Iterator[LiveServer]:
    """`python -m service.cli` on a free loopback port, ready (/readyz 200) when this yields."""
    workdir.mkdir(parents=True, exist_ok=True)
    # no drain period unless a test asks for one: stop() (SIGTERM) stops at once
    settings = {"device": TEST_DEVICE, "drain_seconds": 0, **settings}
    env = environment({f"AE_{key.upper()}": str(value) for key, value in settings.items()})
    env["PYTHONUNBUFFERED"] = "1"
    log_path = workdir / "server.log"
    for _attempt in range(3):  # another process may take the free port before the server binds it
        port = free_port()
        # cwd: an empty folder, so that no stray .env file configures the server
        server = LiveServer(spawn(service_command(port, store), log_path, env, cwd=workdir), port, log_path)
        try:
            if _ready(server):
                yield server
                return
        finally:
            server.stop(STOP_DEADLINE)
    pytest.fail(f"no free port for the server after 3 attempts:\n{server.log()}")


def _ready(server: LiveServer) -> bool:
    """True once /readyz answers 200; False if the port was taken meanwhile; fails on anything else."""
    try:
        server.wait_ready("/readyz", time.monotonic() + START_DEADLINE)
    except ServerFailed as e:
        if e.port_taken:
            return False
        pytest.fail(str(e))
    return True
