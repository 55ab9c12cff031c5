"""Server processes for the benchmarks and the live tests: each on a free loopback port, its output in
a log file, waited for until ready, and stopped; only ever the processes started here."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from bench.common import REPO

LOOPBACK = "127.0.0.1"
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy


class ServerFailed(RuntimeError):
    """A server that exited or did not answer in time; `port_taken`: another process had bound its port."""

    def __init__(self, message: str, port_taken: bool = False) -> None:
        super().__init__(message)
        self.port_taken = port_taken


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def name(self) -> str:
        return "the server"

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_ready(self, path: str, deadline: float) -> None:
        """Until GET `path` answers 200; ServerFailed if the process exits first or `deadline` (monotonic) passes."""
        while _status(self.url + path) != 200:
            if self.process.poll() is not None:
                log, code = self.log(), self.process.returncode
                message = f"{self.name} exited with {code} before it was ready on port {self.port}:\n{log[-3000:]}"
                raise ServerFailed(message, port_taken="address already in use" in log)
            if time.monotonic() > deadline:
                raise ServerFailed(f"{self.name} was not ready on port {self.port} in time:\n{self.log()[-3000:]}")
            time.sleep(0.1)

    def stop(self, timeout: float) -> int:
        """SIGTERM (graceful: the service answers what is queued), wait, then SIGKILL; the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        return int(self.process.returncode)


def _status(url: str) -> int:
    try:
        with DIRECT.open(url, timeout=5) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0  # not listening yet


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def service_command(port: int, store: Path) -> list[str]:
    """The real service (`python -m service.cli`, uvicorn) on `port`, serving `store`."""
    return [sys.executable, "-m", "service.cli", "--host", LOOPBACK, "--port", str(port), "--store", str(store)]


def environment(overrides: dict[str, str]) -> dict[str, str]:
    """This process's environment without its AE_* settings (no stray API key), the repository importable.

    No drain period on SIGTERM (AE_DRAIN_SECONDS=0) unless `overrides` set one: a benchmark or a test
    stops its servers at once.
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith("AE_")} | {"AE_DRAIN_SECONDS": "0"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env | overrides


def spawn(command: list[str], log_path: Path, env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:  # a file, not a pipe: a full pipe would block the server's logging
        return subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)  # fmt: skip


@contextlib.contextmanager
def stopped_on_exit(servers: Mapping[str, Server], timeout: float) -> Iterator[None]:
    """On the way out, stop every server in `servers` (which the caller fills meanwhile), and only those.

    Also when this process is terminated: SIGTERM becomes SystemExit meanwhile, so the way out is taken.
    """
    previous = signal.signal(signal.SIGTERM, _exit)
    try:
        yield
    finally:
        for server in servers.values():
            server.stop(timeout)
        signal.signal(signal.SIGTERM, previous)


def _exit(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)
