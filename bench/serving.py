"""Serving throughput and latency, against a naive server, a ceiling and the in-process model, in one run.

Starts, on loopback ports, the real service (`python -m service.cli`) with batching on and off,
plus the reference servers of bench/reference_servers.py (naive, ceiling, framework-free), all
under the same uvicorn (uvloop, httptools) and log level, then loads them one at a time with wrk
(or httpx where wrk is missing): for each cell (endpoint, body, images per request, connections)
every server in turn, so the servers are compared side by side; `--repeats` such rounds, and
the tables show medians. Between rounds the model's in-process images/s is measured in this
process. The script stops exactly the processes it started.

Servers (`--servers`): the service with its default settings (the targets are judged on it);
batching on: AE_MAX_DELAY_MS=2, a forward pass waits up to 2 ms for more images (up to
AE_MAX_BATCH_SIZE=1024); batching off: AE_MAX_DELAY_MS=0, a forward pass never waits for
company, though it still takes whatever queued while the previous one ran (AE_MAX_BATCH_SIZE=1
would not be "off": it splits a 256-image request into 256 forward passes); one pass at a time
(AE_FORWARD_WORKERS=1; by default a second pass may start when a full batch waits); and the
service with one torch thread for every pass (by default a pass of 64 images or more uses the
cores but one, shared among the workers: on 2 cores, the same) or two for passes of 64 images
or more; and the service without uvicorn's access log (AE_ACCESS_LOG=false; every other server
writes it).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import math
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import torch
from PIL import Image

from bench import launch
from bench.common import REPO, Table, base_parser, default_data_dir, emit, fmt, machine, median, report
from bench.inference import DEFAULT_THREADS, forward_call, images_per_second, served_models, test_images
from bench.loadgen import LoadResult, Request, default_client, post_once, run_load

START_DEADLINE_S = 180.0  # loading torch and seven models on a busy 2-core machine
STOP_DEADLINE_S = 30.0
MODEL = "mlp2-p16"  # the service's default model; the naive server serves the same one
LATENT_SIZE = 16


@dataclass(frozen=True)
class ServerSpec:
    key: str
    label: str
    kind: str  # "service", or a reference server: "naive", "ceiling" or "bare"
    env: dict[str, str] = field(default_factory=dict)


SERVERS = {
    spec.key: spec
    for spec in (
        ServerSpec("default", "service, default settings", "service"),
        ServerSpec("on", "service, batching on (2 ms window)", "service", {"AE_MAX_DELAY_MS": "2"}),
        ServerSpec("off", "service, batching off (no wait)", "service", {"AE_MAX_DELAY_MS": "0"}),
        ServerSpec("1t", "service, 1 torch thread for every pass", "service",
                   {"AE_TORCH_THREADS": "1", "OMP_NUM_THREADS": "1"}),
        ServerSpec("2t", "service, 2 torch threads for passes of 64+ images", "service",
                   {"AE_TORCH_THREADS": "2"}),
        ServerSpec("1w", "service, one pass at a time", "service", {"AE_FORWARD_WORKERS": "1"}),
        ServerSpec("nolog", "service, no access log", "service", {"AE_ACCESS_LOG": "false"}),
        ServerSpec("naive", "naive (pydantic list of floats)", "naive"),
        ServerSpec("ceiling", "ceiling (echo, no model)", "ceiling"),
        ServerSpec("bare", "framework-free (plain ASGI, raw bytes only)", "bare"),
    )
}  # fmt: skip
DEFAULT_SERVERS = ["default", "on", "off", "1w", "nolog", "naive", "ceiling", "bare"]


@dataclass
class Server(launch.Server):
    spec: ServerSpec

    @property
    def name(self) -> str:
        return self.spec.label


def _command(spec: ServerSpec, port: int, args: argparse.Namespace) -> list[str]:
    if spec.kind == "service":
        return launch.service_command(port, args.store)
    return [sys.executable, "-m", "bench.reference_servers", spec.kind, "--port", str(port),
            "--store", str(args.store), "--model", MODEL, "--device", args.current_device,
            "--log-level", args.log_level]  # fmt: skip


@contextlib.contextmanager
def running(specs: list[ServerSpec], args: argparse.Namespace, log_dir: Path) -> Iterator[dict[str, Server]]:
    """Start every server at once, wait until all are ready; stop them, and only them, on the way out."""
    servers: dict[str, Server] = {}
    with launch.stopped_on_exit(servers, STOP_DEADLINE_S):
        for spec in specs:
            port = launch.free_port()
            log_path = log_dir / f"{spec.key}-{args.current_device}.log"
            env = launch.environment({"AE_DEVICE": args.current_device, "AE_LOG_LEVEL": args.log_level} | spec.env)
            servers[spec.key] = Server(launch.spawn(_command(spec, port, args), log_path, env, REPO), port, log_path,
                                       spec)  # fmt: skip
        deadline = time.monotonic() + START_DEADLINE_S
        for server in servers.values():
            server.wait_ready("/readyz" if server.spec.kind == "service" else "/healthz", deadline)
        yield servers


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ----------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class Cell:
    endpoint: str  # "reconstruct" or "encode"
    body: str  # "json", "png" or "raw"
    images: int
    concurrency: int


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels.reshape(28, 28)).save(buffer, format="PNG")
    return buffer.getvalue()


def _multipart(files: list[bytes], boundary: str = "benchboundary7MA4YWxkTrZu0gW") -> tuple[str, bytes]:
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="digit{i}.png"\r\n'
        f"Content-Type: image/png\r\n\r\n".encode()
        + blob
        + b"\r\n"
        for i, blob in enumerate(files)
    ]
    return f"multipart/form-data; boundary={boundary}", b"".join(parts) + f"--{boundary}--\r\n".encode()


def request_for(cell: Cell, pixels: np.ndarray, server: ServerSpec) -> Request:
    """The body of `cell` from real MNIST digits (uint8 rows); the ceiling gets the same body at /echo."""
    rows = pixels[: cell.images]
    path = "/echo" if server.kind == "ceiling" else f"/{cell.endpoint}"
    if cell.body == "json":
        body = orjson.dumps({"images": rows.astype(np.float32) / 255.0}, option=orjson.OPT_SERIALIZE_NUMPY)
        return Request(path, "application/json", body, cell.images)
    if cell.body == "png":
        content_type, body = _multipart([_png(row) for row in rows])
        return Request(path, content_type, body, cell.images)
    return Request(path, "application/octet-stream", rows.tobytes(), cell.images, accept="application/octet-stream")


def serves(spec: ServerSpec, cell: Cell) -> bool:
    if spec.kind == "naive":
        return cell.body == "json"
    if spec.kind == "ceiling":
        return cell.endpoint == "reconstruct"  # an echo has no endpoints; shown once per body
    if spec.kind == "bare":
        return cell.body == "raw"
    return True


def check_response(server: Server, cell: Cell, request: Request) -> None:
    """One request before timing: a 200 with the right number of results, so errors cannot pass for speed."""
    body, _ = post_once(server.url, request)
    what = f"{server.spec.label} {request.path} {cell}"
    if server.spec.kind == "ceiling":
        ok = body == request.body
    elif cell.body == "raw":
        width = 784 if cell.endpoint == "reconstruct" else 4 * LATENT_SIZE
        ok = len(body) == cell.images * width
    else:
        payload = orjson.loads(body)
        ok = len(payload["reconstructions" if cell.endpoint == "reconstruct" else "latents"]) == cell.images
    if not ok:
        raise RuntimeError(f"unexpected response from {what}: {body[:200]!r}")


def cells(args: argparse.Namespace) -> list[Cell]:
    if args.smoke:
        return [Cell("reconstruct", "json", 1, 4), Cell("reconstruct", "raw", 1, 4), Cell("reconstruct", "raw", 256, 2)]
    single = [Cell(e, b, 1, c) for e in args.endpoints for b in args.bodies for c in args.concurrency]
    many = [Cell(e, b, args.many, c) for e in args.endpoints for b in args.bodies if b != "png"
            for c in args.many_concurrency]  # fmt: skip
    return single + many


# ------------------------------------------------------------------------------ measuring

Samples = dict[tuple[str, Cell], list[LoadResult]]


def load(server: Server, cell: Cell, request: Request, args: argparse.Namespace) -> LoadResult:
    before = _cpu_seconds(server.process.pid)
    result = run_load(args.client, server.port, request, cell.concurrency, args.seconds, args.max_requests)
    result.server_cpu_s = _cpu_seconds(server.process.pid) - before
    return result


def _thread_counts(device: str) -> list[int]:
    return sorted({1, DEFAULT_THREADS}) if device == "cpu" else [DEFAULT_THREADS]


def in_process(device: torch.device, store: Path, pixels: np.ndarray, min_seconds: float) -> dict[str, float]:
    """The served model's images/s in this process at batch 1 and 256, with 1 torch thread and torch's default."""
    checkpoint = served_models(store, device)[MODEL]
    images = pixels.astype(np.float32) / 255.0
    rates = {}
    for threads in _thread_counts(device.type):
        torch.set_num_threads(threads)
        for path, n in itertools.product(("model", "service forward"), (1, 256)):
            call = forward_call(checkpoint, device, path, images[:n])
            rates[f"{path}, batch {n}, {threads} threads"] = images_per_second(call, n, min_seconds)
    torch.set_num_threads(DEFAULT_THREADS)
    return rates


def measure(device: str, args: argparse.Namespace, pixels: np.ndarray, log_dir: Path) -> dict[str, Any]:
    args.current_device = device
    specs = [SERVERS[key] for key in args.servers]
    grid = cells(args)
    samples: Samples = {}
    inproc: dict[str, list[float]] = {}
    with running(specs, args, log_dir) as servers:
        requests = {(s.spec.key, c): request_for(c, pixels, s.spec) for s in servers.values() for c in grid}
        for (key, cell), request in requests.items():
            if serves(servers[key].spec, cell):
                check_response(servers[key], cell, request)
        for repeat in range(args.repeats):
            for name, rate in in_process(torch.device(device), args.store, pixels, args.min_seconds).items():
                inproc.setdefault(name, []).append(rate)
            for cell in grid:
                for key, server in servers.items():
                    if serves(server.spec, cell):
                        result = load(server, cell, requests[key, cell], args)
                        samples.setdefault((key, cell), []).append(result)
                        emit(f"[{device} {repeat + 1}/{args.repeats}] {server.spec.label:38} {cell.endpoint:11} "
                             f"{cell.body:4} x{cell.images:<3} c={cell.concurrency:<3} {result.rps:9.0f} req/s "
                             f"p99 {result.p99_ms:7.1f} ms errors {result.errors}")  # fmt: skip
    return {"device": device, "samples": samples, "in_process": inproc, "grid": grid}


# ------------------------------------------------------------------------------- reporting


def _paired(a: list[float], b: list[float]) -> float:
    """The median of per-repeat ratios: each pair was measured side by side."""
    return median(x / y if y else float("nan") for x, y in zip(a, b, strict=True))


def _images_per_s(results: list[LoadResult], images: int) -> list[float]:
    return [r.rps * images for r in results]


def _device_label(device: str) -> str:
    if device == "cuda":
        return f"CUDA ({torch.cuda.get_device_name(0)})"
    return f"CPU ({os.cpu_count()} cores)"


def serving_tables(result: dict[str, Any], args: argparse.Namespace) -> list[Table]:
    samples: Samples = result["samples"]
    where = _device_label(result["device"])
    tables = []
    for images in sorted({cell.images for cell in result["grid"]}):
        table = Table(
            f"Serving on {where}: {images} image{'s' if images > 1 else ''} per request "
            f"(median of {args.repeats}, {args.seconds} s each, {args.client})",
            ["endpoint", "in", "conns", "server", "req/s", "images/s", "p50 ms", "p95 ms", "p99 ms", "errors",
             "server CPU us/req", "x naive", "x ceiling"],
        )  # fmt: skip
        for cell in (c for c in result["grid"] if c.images == images):
            naive = samples.get(("naive", Cell(cell.endpoint, "json", cell.images, cell.concurrency)))
            ceiling = samples.get(("ceiling", Cell("reconstruct", cell.body, cell.images, cell.concurrency)))
            for key in args.servers:
                rs = samples.get((key, cell))
                if rs is None:
                    continue
                rps = [r.rps for r in rs]
                cpu = median(r.server_cpu_s / r.ok * 1e6 if r.ok else float("nan") for r in rs)
                table.add(
                    "/echo" if SERVERS[key].kind == "ceiling" else f"/{cell.endpoint}",
                    cell.body, cell.concurrency, SERVERS[key].label, fmt(median(rps)), fmt(median(rps) * images),
                    fmt(median(r.p50_ms for r in rs), 1), fmt(median(r.p95_ms for r in rs), 1),
                    fmt(median(r.p99_ms for r in rs), 1), sum(r.errors for r in rs), fmt(cpu),
                    f"{_paired(rps, [r.rps for r in naive]):.2f}" if naive else "-",
                    f"{_paired(rps, [r.rps for r in ceiling]):.2f}" if ceiling else "-",
                )  # fmt: skip
        tables.append(table)
    inproc = result["in_process"]
    model = Table(
        f"In-process images/s of {MODEL} on {where}, measured between the rounds (median of {args.repeats})",
        ["path", "torch threads", "batch 1", "batch 256"],
    )
    for path, threads in itertools.product(("model", "service forward"), _thread_counts(result["device"])):
        model.add(path, threads, *(fmt(median(inproc[f"{path}, batch {n}, {threads} threads"])) for n in (1, 256)))
    tables.append(model)
    tables.append(targets_table(result, args, where))
    return tables


def targets_table(result: dict[str, Any], args: argparse.Namespace, where: str) -> Table:
    samples: Samples = result["samples"]
    # the service's variants, and the framework-free server for what its design could reach
    services = [key for key in args.servers if SERVERS[key].kind in ("service", "bare")]
    table = Table(
        f"Targets on {where}",
        ["target", *(f"{SERVERS[k].label}: measured" for k in services), "met"],
        notes=["Met: judged on the service with its default settings (the framework-free server: raw bodies only)."],
    )
    c16 = 16 if 16 in args.concurrency else max(args.concurrency)
    many_c = 16 if 16 in args.many_concurrency else max(args.many_concurrency)
    json1, raw1 = Cell("reconstruct", "json", 1, c16), Cell("reconstruct", "raw", 1, c16)
    raw_many = Cell("reconstruct", "raw", args.many, many_c)
    rows = [
        (f"single-image JSON /reconstruct, {c16} conns: >= 3x naive", 3.0,
         lambda k: _ratio(samples, (k, json1), ("naive", json1))),
        (f"raw single-image /reconstruct, {c16} conns: >= 0.8x ceiling", 0.8,
         lambda k: _ratio(samples, (k, raw1), ("ceiling", raw1))),
        (f"{args.many}-image raw /reconstruct, {many_c} conns: >= 0.6x in-process images/s at batch 256 "
         "(model, the better thread count)", 0.6,
         lambda k: _vs_inproc(samples, result["in_process"], (k, raw_many), args.many)),
    ]  # fmt: skip
    for label, bound, measure_ in rows:
        values = {k: measure_(k) for k in services}
        first = values.get("default", next(iter(values.values()), float("nan")))
        shown = ("-" if math.isnan(v) else f"{v:.2f}x" for v in values.values())
        verdict = "not measured" if math.isnan(first) else "met" if first >= bound else "**missed**"
        table.add(label, *shown, verdict)
    worst: dict[str, tuple[float, int, str]] = {}
    top = max(args.concurrency)
    for key in services:
        cells_ = [c for c in result["grid"] if c.concurrency == top and c.images == 1 and (key, c) in samples]
        spreads = {c: median(r.p99_ms / r.p50_ms for r in samples[key, c]) for c in cells_}
        errors = sum(r.errors for c in cells_ for r in samples[key, c])
        bad = max(spreads, key=lambda c: spreads[c]) if spreads else None
        worst[key] = (spreads[bad] if bad else float("nan"), errors, f"{bad.endpoint} {bad.body}" if bad else "-")
    first_key = "default" if "default" in worst else next(iter(worst), None)
    ok = first_key is not None and worst[first_key][0] <= 5 and worst[first_key][1] == 0
    table.add(
        f"{top} conns, every single-image cell: p99 <= 5x p50, zero errors",
        *(f"worst p99/p50 {w[0]:.1f} ({w[2]}), {w[1]} errors" for w in worst.values()),
        "met" if ok else "**missed**",
    )
    return table


def _ratio(samples: Samples, a: tuple[str, Cell], b: tuple[str, Cell]) -> float:
    if a not in samples or b not in samples:
        return float("nan")
    return _paired([r.rps for r in samples[a]], [r.rps for r in samples[b]])


def _vs_inproc(samples: Samples, inproc: dict[str, list[float]], a: tuple[str, Cell], images: int) -> float:
    if a not in samples:
        return float("nan")
    per_threads = [rates for key, rates in inproc.items() if key.startswith("model, batch 256,")]
    best = [max(rates) for rates in zip(*per_threads, strict=True)]  # per repeat, the better thread count
    return _paired(_images_per_s(samples[a], images), best)


def mnist_pixels(data_dir: Path, count: int) -> np.ndarray:
    """The first `count` MNIST test digits as (count, 784) uint8."""
    return np.rint(test_images(data_dir, count) * 255.0).astype(np.uint8)


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__)
    parser.add_argument("--store", type=Path, default=REPO / "checkpoints")
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    parser.add_argument("--device", choices=("all", "cpu", "cuda"), default="all", help="all: CPU, and CUDA if present")
    parser.add_argument("--servers", nargs="+", choices=list(SERVERS), help=f"default: {' '.join(DEFAULT_SERVERS)}")
    parser.add_argument(
        "--client", choices=("wrk", "httpx"), default=default_client(), help="default: wrk if installed"
    )
    parser.add_argument("--seconds", type=int, help="seconds per cell and server (default 3)")
    parser.add_argument("--max-requests", type=int, default=200_000, help="requests per cell and server, at most")
    parser.add_argument("--endpoints", nargs="+", choices=("reconstruct", "encode"), default=["reconstruct", "encode"])
    parser.add_argument("--bodies", nargs="+", choices=("json", "png", "raw"), default=["json", "png", "raw"],
                        help="request bodies (many-image cells: JSON and raw only)")  # fmt: skip
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64], help="single-image connections")
    parser.add_argument("--many", type=int, default=256, help="images per request of the many-image cells")
    parser.add_argument("--many-concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--log-level", default="info", help="every server's (the service's AE_LOG_LEVEL default)")
    parser.add_argument("--min-seconds", type=float, help="in-process timing per repeat (default 0.5)")
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (1 if args.smoke else 3)
    args.seconds = args.seconds or (1 if args.smoke else 3)
    args.min_seconds = args.min_seconds or (0.01 if args.smoke else 0.5)
    args.servers = args.servers or (["default", "naive", "ceiling", "bare"] if args.smoke else DEFAULT_SERVERS)
    if args.smoke:
        args.concurrency, args.many_concurrency, args.max_requests = [4], [2], min(args.max_requests, 20_000)
    devices = ["cpu", "cuda"] if args.device == "all" and torch.cuda.is_available() else [args.device]
    devices = ["cpu"] if devices == ["all"] else devices
    info = machine()
    pixels = mnist_pixels(args.data_dir, max(args.many, 1))
    tables: list[Table] = []
    data = []
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as logs:
        for device in devices:
            result = measure(device, args, pixels, Path(logs))
            tables += serving_tables(result, args)
            data.append({"device": device, "in_process": result["in_process"],
                         "cells": [{"server": k, **vars(c), "results": [vars(r) for r in rs]}
                                   for (k, c), rs in result["samples"].items()]})  # fmt: skip
    report("serving", tables, info, args.out, extra=data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
