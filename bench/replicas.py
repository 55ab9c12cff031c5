"""Replicas behind nginx on one host: what the proxy costs, what a second replica buys, and images/s per core.

Starts on loopback, at once, the real service as three replicas of the shipped store and two nginx processes
running deploy/nginx's configuration (bench/balancer.py), then loads four setups one after another with wrk
(bench/loadgen.py; httpx where wrk is missing), in `--repeats` rounds; the tables show medians.

- 1 replica, direct: the service with its default settings (every core, torch's threads), as `make run`.
- 1 replica behind nginx: the same process, through nginx.
- 2 replicas behind nginx: two more processes, each pinned to one core (taskset, as compose's cpus or a pod's
  CPU limit give a replica its share) with one torch thread (AE_TORCH_THREADS=1).
- 1 replica on 1 core, direct: one of those two alone, for the images/s one core serves.

Every replica runs without uvicorn's access log (nginx logs each request). CPU time is read from /proc for
the replicas and nginx (master and worker) during each load; wrk's own is not counted but shares the cores.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench import balancer
from bench.common import REPO, Table, base_parser, default_data_dir, emit, fmt, machine, median, report
from bench.inference import test_images
from bench.loadgen import LoadResult, Request, default_client, run_load

MODEL = "mlp2-p16"  # the service's default model
COMMON = {"AE_DEVICE": "cpu", "AE_ACCESS_LOG": "false"}
ONE_CORE = {"AE_TORCH_THREADS": "1"}


@dataclass(frozen=True)
class Setup:
    key: str
    label: str
    replicas: tuple[str, ...]  # which replica processes answer
    proxy: str = ""  # which nginx, if any


SETUPS = [
    Setup("direct", "1 replica, direct (all cores)", ("all",)),
    Setup("lb1", "1 replica behind nginx (all cores)", ("all",), "lb1"),
    Setup("lb2", "2 replicas behind nginx (1 core each)", ("core0", "core1"), "lb2"),
    Setup("core", "1 replica on 1 core, direct", ("core0",)),
]


@dataclass
class Sample:
    load: LoadResult
    replica_cpu_s: float
    nginx_cpu_s: float


@dataclass
class Running:
    ports: dict[str, int] = field(default_factory=dict)  # setup key -> where the load goes
    replica_pids: dict[str, int] = field(default_factory=dict)
    nginx_pids: dict[str, int] = field(default_factory=dict)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) and of its children (nginx's workers)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return float("nan")
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(_cpu_seconds(int(child)) for child in children)


@contextlib.contextmanager
def running(store: Path, workdir: Path) -> Iterator[Running]:
    """Three replicas (one on every core, two pinned to a core each), nginx in front of the first and of the pair."""
    cores = sorted(os.sched_getaffinity(0))
    pinned = [str(cores[0]), str(cores[1 % len(cores)])]
    with (
        balancer.replicas(workdir / "all", store, 1, COMMON) as (whole,),
        balancer.replicas(workdir / "pinned", store, 2, COMMON | ONE_CORE, cpus=pinned) as pair,
    ):
        limit = "33554432"
        with (
            balancer.nginx(workdir / "lb1", [whole.address], int(limit)) as lb1,
            balancer.nginx(workdir / "lb2", [r.address for r in pair], int(limit)) as lb2,
        ):
            yield Running(
                ports={"direct": whole.port, "lb1": lb1.port, "lb2": lb2.port, "core": pair[0].port},
                replica_pids={"all": whole.process.pid, "core0": pair[0].process.pid, "core1": pair[1].process.pid},
                nginx_pids={"lb1": lb1.process.pid, "lb2": lb2.process.pid},
            )


def request_for(pixels: np.ndarray, images: int) -> Request:
    return Request("/reconstruct", "application/octet-stream", pixels[:images].tobytes(), images,
                   accept="application/octet-stream")  # fmt: skip


def check(port: int, request: Request) -> None:
    """One request before timing: a 200 with every image back, so that errors cannot pass for speed."""
    http = urllib.request.Request(f"http://127.0.0.1:{port}{request.path}", data=request.body, method="POST",
                                  headers={"Content-Type": request.content_type, "Accept": request.accept})  # fmt: skip
    with urllib.request.urlopen(http, timeout=60) as response:
        if len(response.read()) != request.images * 784:
            raise RuntimeError(f"unexpected reply from port {port}")


def measure(setup: Setup, run: Running, request: Request, connections: int, args: Any) -> Sample:
    pids = [run.replica_pids[r] for r in setup.replicas]
    nginx = run.nginx_pids.get(setup.proxy)
    before = [_cpu_seconds(pid) for pid in pids], _cpu_seconds(nginx) if nginx else 0.0
    load = run_load(args.client, run.ports[setup.key], request, connections, args.seconds, args.max_requests)
    replica_cpu = sum(_cpu_seconds(pid) - was for pid, was in zip(pids, before[0], strict=True))
    return Sample(load, replica_cpu, (_cpu_seconds(nginx) - before[1]) if nginx else 0.0)


def tables(samples: dict[tuple[str, int], list[Sample]], workloads: list[tuple[int, int]], args: Any) -> list[Table]:
    out = []
    for images, connections in workloads:
        table = Table(
            f"{images} image{'s' if images > 1 else ''} per request, raw /reconstruct, {connections} connections "
            f"(median of {args.repeats}, {args.seconds} s each, {args.client})",
            ["setup", "req/s", "images/s", "p50 ms", "p99 ms", "errors", "replica cores busy", "nginx cores busy",
             "images/s per replica core", "nginx CPU us/req", "x direct"],
        )  # fmt: skip
        direct = [s.load.rps for s in samples["direct", images]]
        for setup in SETUPS:
            runs = samples[setup.key, images]
            rps = [s.load.rps for s in runs]
            busy = [s.replica_cpu_s / s.load.seconds for s in runs]
            nginx = [s.nginx_cpu_s / s.load.seconds for s in runs]
            per_core = median(r * images / b for r, b in zip(rps, busy, strict=True))
            nginx_us = median(s.nginx_cpu_s / s.load.ok * 1e6 if s.load.ok else float("nan") for s in runs)
            table.add(setup.label, fmt(median(rps)), fmt(median(rps) * images),
                      fmt(median(s.load.p50_ms for s in runs), 1), fmt(median(s.load.p99_ms for s in runs), 1),
                      sum(s.load.errors for s in runs),
                      fmt(median(busy), 2), fmt(median(nginx), 2) if setup.proxy else "-", fmt(per_core),
                      fmt(nginx_us) if setup.proxy else "-",
                      f"{median(r / d for r, d in zip(rps, direct, strict=True)):.2f}")  # fmt: skip
        out.append(table)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__)
    parser.add_argument("--store", type=Path, default=REPO / "checkpoints")
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    parser.add_argument(
        "--client", choices=("wrk", "httpx"), default=default_client(), help="default: wrk if installed"
    )
    parser.add_argument("--seconds", type=int, help="seconds per setup and workload (default 5)")
    parser.add_argument("--max-requests", type=int, default=500_000, help="requests per load, at most")
    parser.add_argument("--connections", type=int, default=16, help="connections of the single-image workload")
    parser.add_argument("--many", type=int, default=256, help="images per request of the second workload")
    parser.add_argument("--many-connections", type=int, default=4)
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (1 if args.smoke else 3)
    args.seconds = args.seconds or (1 if args.smoke else 5)
    if args.smoke:
        args.connections, args.many_connections, args.max_requests = 4, 2, min(args.max_requests, 5_000)
    workloads = [(1, args.connections), (args.many, args.many_connections)]
    info = machine()
    pixels = np.rint(test_images(args.data_dir, args.many) * 255.0).astype(np.uint8)
    samples: dict[tuple[str, int], list[Sample]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-replicas-") as workdir, running(args.store, Path(workdir)) as run:
        requests = {images: request_for(pixels, images) for images, _ in workloads}
        for setup in SETUPS:
            for request in requests.values():
                check(run.ports[setup.key], request)
        for repeat in range(args.repeats):
            for images, connections in workloads:
                for setup in SETUPS:
                    sample = measure(setup, run, requests[images], connections, args)
                    samples.setdefault((setup.key, images), []).append(sample)
                    emit(f"[{repeat + 1}/{args.repeats}] x{images:<4} c={connections:<3} {setup.label:40} "
                         f"{sample.load.rps * images:10.0f} images/s  p99 {sample.load.p99_ms:7.1f} ms  "
                         f"errors {sample.load.errors}")  # fmt: skip
    data = [{"setup": key, "images": images, "results": [vars(s.load) | vars(s) for s in runs]}
            for (key, images), runs in samples.items()]  # fmt: skip
    report("replicas", tables(samples, workloads, args), info, args.out, extra=data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
