"""A real server for tests: `python -m service.cli` (uvicorn) on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"
START_DEADLINE = 90.0  # seconds for a server to answer /readyz 200 on a busy machine
STOP_DEADLINE = 20.0


@dataclass
class LiveServer:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def client(self, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout, trust_env=False)

    def async_client(self, timeout: float = 30.0, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=timeout, trust_env=False, **kwargs)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def _stop(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM, wait, then SIGKILL: only ever the server process this module started."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_DEADLINE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_DEADLINE)
    return int(process.returncode)


@contextmanager
def live_server(workdir: Path, store: Path, **settings: object) -> Iterator[LiveServer]:
    """`python -m service.cli` on a free loopback port, ready (/readyz 200) when this yields."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = {key: value for key, value in os.environ.items() if not key.startswith("AE_")}
    env |= {f"AE_{key.upper()}": str(value) for key, value in {"device": "cpu", **settings}.items()}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    log_path = workdir / "server.log"
    for _attempt in range(3):  # another process may take the free port before the server binds it
        port = _free_port()
        command = [sys.executable, "-m", "service.cli", "--host", LOOPBACK, "--port", str(port), "--store", str(store)]
        with log_path.open("wb") as log:  # a file, not a pipe: a full pipe would block the server's logging
            # cwd: an empty folder, so that no stray .env file configures the server
            process = subprocess.Popen(command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
        server = LiveServer(process, port, log_path)
        try:
            if _wait_until_ready(server):
                yield server
                return
        finally:
            _stop(process)
    pytest.fail(f"no free port for the server after 3 attempts:\n{server.log()}")


def _wait_until_ready(server: LiveServer) -> bool:
    """True once /readyz answers 200; False if the port was taken meanwhile; fails on anything else."""
    deadline = time.monotonic() + START_DEADLINE
    with server.client(timeout=5) as client:
        while True:
            if server.process.poll() is not None:
                if "address already in use" in server.log():
                    return False
                pytest.fail(f"the server exited with {server.process.returncode} before ready:\n{server.log()}")
            try:
                if client.get("/readyz").status_code == 200:
                    return True
            except httpx.TransportError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                pytest.fail(f"the server was not ready within {START_DEADLINE:.0f} s:\n{server.log()}")
            time.sleep(0.1)
