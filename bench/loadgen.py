"""Load generation on loopback, bounded in seconds and in requests: wrk (preferred) or an asyncio httpx client.

wrk (Debian's package, `apt-get install wrk`) runs `bench/lua/post.lua`, which POSTs one fixed
body over `connections` keep-alive connections from one wrk thread. The httpx client is the
fallback where wrk is missing; being Python on the same cores, it is itself the bottleneck well
below the service's limits, so its figures are only for smoke runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

import httpx
import numpy as np

from bench.launch import DIRECT, LOOPBACK

LUA_SCRIPT = Path(__file__).resolve().parent / "lua" / "post.lua"
TIMEOUT_S = 30  # a request slower than this is an error (wrk's default of 2 s would hide a slow tail)


@dataclass(frozen=True)
class Request:
    path: str
    content_type: str
    body: bytes
    images: int
    accept: str = ""
    headers: tuple[tuple[str, str], ...] = ()  # any others (the Open Inference Protocol's header length)


@dataclass
class LoadResult:
    requests: int  # responses received, any status
    errors: int  # status >= 400, socket errors and timeouts
    seconds: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    server_cpu_s: float = float("nan")  # CPU time the server process used meanwhile (set by the caller)
    max_ms: float = float("nan")  # the slowest response

    @property
    def ok(self) -> int:
        return max(self.requests - self.errors, 0)

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else float("nan")


def post_once(url: str, request: Request, timeout: float = 60) -> tuple[bytes, Message]:
    """`request` sent once to the server at `url` (never through a proxy): the reply's body and headers (looked
    up case-insensitively); urllib's HTTPError for a status of 400 or more. Benchmarks check servers with it."""
    headers = {"Content-Type": request.content_type, **dict(request.headers)}
    headers |= {"Accept": request.accept} if request.accept else {}
    http = urllib.request.Request(url + request.path, data=request.body, method="POST", headers=headers)
    with DIRECT.open(http, timeout=timeout) as response:
        return response.read(), response.headers


def default_client() -> str:
    return "wrk" if shutil.which("wrk") else "httpx"


def _check_loopback(port: int) -> str:
    if not 0 < port < 65536:
        raise ValueError(f"bad port {port}")
    return f"http://{LOOPBACK}:{port}"


def run_wrk(port: int, request: Request, connections: int, seconds: int, max_requests: int) -> LoadResult:
    """One wrk run against 127.0.0.1:port; stops at `seconds` or `max_requests` responses."""
    with tempfile.NamedTemporaryFile(prefix="bench-body-", suffix=".bin") as body:
        body.write(request.body)
        body.flush()
        env = os.environ | {
            "WRK_BODY_FILE": body.name,
            "WRK_CONTENT_TYPE": request.content_type,
            "WRK_ACCEPT": request.accept,
            "WRK_HEADERS": "\n".join(f"{name}: {value}" for name, value in request.headers),
            "WRK_MAX_REQUESTS": str(max_requests),
        }
        command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", f"--timeout={TIMEOUT_S}s", "--latency",
                   "-s", str(LUA_SCRIPT), _check_loopback(port) + request.path]  # fmt: skip
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + TIMEOUT_S + 10)
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRK_RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    r = json.loads(line.removeprefix("WRK_RESULT "))
    errors = r["status"] + r["connect"] + r["read"] + r["write"] + r["timeout"]
    return LoadResult(
        requests=r["requests"] + r["connect"] + r["read"] + r["write"] + r["timeout"],
        errors=errors,
        seconds=r["duration_us"] / 1e6,
        p50_ms=r["p50_us"] / 1e3,
        p95_ms=r["p95_us"] / 1e3,
        p99_ms=r["p99_us"] / 1e3,
        max_ms=r["max_us"] / 1e3,
    )


async def _run_httpx(port: int, request: Request, connections: int, seconds: float, max_requests: int) -> LoadResult:
    url = _check_loopback(port) + request.path
    # identity, as wrk sends: a server that compresses replies (LitServe does, over 1 kB) must not be measured so
    headers = {"content-type": request.content_type, "accept-encoding": "identity"}
    headers |= {"accept": request.accept} if request.accept else {}
    headers |= dict(request.headers)
    latencies: list[float] = []
    errors = 0
    sent = 0
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=TIMEOUT_S) as client:
        deadline = time.monotonic() + seconds

        async def worker() -> None:
            nonlocal errors, sent
            while time.monotonic() < deadline and sent < max_requests:
                sent += 1
                started = time.perf_counter()
                try:
                    response = await client.post(url, content=request.body, headers=headers)
                    failed = response.status_code >= 400
                except httpx.HTTPError:
                    failed = True
                latencies.append(time.perf_counter() - started)
                errors += failed

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.monotonic() - started
    p50, p95, p99 = np.percentile(latencies, [50, 95, 99]) * 1e3 if latencies else (float("nan"),) * 3
    slowest = max(latencies, default=float("nan")) * 1e3
    return LoadResult(len(latencies), errors, elapsed, float(p50), float(p95), float(p99), max_ms=slowest)


def run_load(client: str, port: int, request: Request, connections: int, seconds: int, max_requests: int) -> LoadResult:
    if client == "wrk":
        return run_wrk(port, request, connections, seconds, max_requests)
    return asyncio.run(_run_httpx(port, request, connections, seconds, max_requests))
