"""Where the service's CPU time goes per request: py-spy samples the real server while wrk loads one cell.

Starts a server as bench/serving.py does (`--server default`: the service with its default settings),
and for each `--cells` entry runs the load generator and `py-spy record --nonblocking` on the
server process at the same time. Each sample is charged to the package of its innermost Python
frame (self time), and also to every listed step of the request path on its stack (inclusive);
both are shown as sampled microseconds per request, for the event-loop thread and for the
other threads (the forward pass runs in a worker thread). py-spy counts a thread whenever it is
not idle: running, or waiting for the GIL or a core, so on a busy machine the samples add up to
more than the CPU time that /proc reports (the summary shows both). Native code shows under the
Python frame that called it (orjson under the codecs, torch's kernels under torch).

python -m bench.profile_service --cells reconstruct:raw:1:16 reconstruct:json:1:16
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import REPO, Table, base_parser, default_data_dir, fmt, machine, report
from bench.loadgen import LoadResult, default_client
from bench.serving import SERVERS, Cell, check_response, load, mnist_pixels, request_for, running

FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")
STDLIB = re.compile(r"^.*/python3\.\d+/")
# uvloop runs the loop in C: samples whose innermost Python frame is asyncio.run are the loop itself.
EVENT_LOOP = "event loop in C (uvloop: sockets, callbacks)"
# Steps of the request path, as substrings of a frame ("function (file:line)"); a sample counts for every
# step on its stack (inclusive), so the steps overlap.
STEPS = {
    "dependencies (model, settings, API key)": ("solve_dependencies (",),
    "reading and parsing the body (read_images)": ("read_images (",),
    "submitting to the batcher and waiting (infer)": ("infer (",),
    "disconnect watch (_cancel_on_hang_up)": ("_cancel_on_hang_up (",),
    "batcher (submit, _run, _run_batch)": ("MicroBatcher.",),
    "forward pass (run_pass)": ("run_pass (",),
    "encoding the response (json_response, raw_response)": ("json_response (", "raw_response ("),
    "metrics (prometheus_client)": ("prometheus_client/",),
    "access log (logging)": ("logging/__init__", "uvicorn/logging"),
    "naive: pydantic validation and JSON encoding": ("serialize_response (", "jsonable_encoder (",
                                                     "request_body_to_args (", "_validate_value_with_model_field ("),
}  # fmt: skip


def package(file: str) -> str:
    """A frame's file -> its package: starlette/routing.py -> starlette, service/codecs.py -> service.codecs.

    py-spy writes files relative to their sys.path entry; absolute paths are cut there too.
    """
    path = file.replace("\\", "/")
    for marker in ("site-packages/", "dist-packages/"):
        path = path.split(marker, 1)[1] if marker in path else path
    path = STDLIB.sub("", path) if STDLIB.search(path) else path
    if path.startswith(str(REPO) + "/"):
        path = path[len(str(REPO)) + 1 :]
    top, _, rest = path.partition("/")
    if top in ("service", "models", "bench") and rest:
        return f"{top}.{rest.removesuffix('.py').replace('/', '.')}"
    return top.removesuffix(".py")


@dataclass
class Profile:
    samples: int = 0
    self_by_package: Counter[str] = field(default_factory=Counter)
    by_step: Counter[str] = field(default_factory=Counter)


def parse(raw: str) -> dict[str, Profile]:
    """py-spy's raw (collapsed) output with --threads -> profiles of the event-loop thread and of the others."""
    profiles = {"event loop": Profile(), "other threads": Profile()}
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        thread, *frames = stack.split(";")
        profile = profiles["event loop" if thread.endswith("MainThread") else "other threads"]
        count = int(count_text)
        profile.samples += count
        parsed = [m for m in (FRAME.match(f) for f in frames) if m]
        leaf = parsed[-1]["file"] if parsed else "?"
        profile.self_by_package[EVENT_LOOP if leaf.endswith("asyncio/runners.py") else package(leaf)] += count
        for step, patterns in STEPS.items():
            if any(p in frame for frame in frames for p in patterns):
                profile.by_step[step] += count
    return profiles


def profile_cell(server: Any, cell: Cell, args: argparse.Namespace, pixels: Any) -> tuple[LoadResult, dict[str, Any]]:
    request = request_for(cell, pixels, server.spec)
    check_response(server, cell, request)
    with tempfile.TemporaryDirectory(prefix="bench-pyspy-") as folder:
        output = Path(folder) / "raw.txt"
        spy = subprocess.Popen(
            [args.py_spy, "record", "--pid", str(server.process.pid), "--rate", str(args.rate), "--duration",
             str(args.seconds), "--format", "raw", "--threads", "--nonblocking", "--output", str(output)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        result_box: list[LoadResult] = []
        loader = threading.Thread(target=lambda: result_box.append(load(server, cell, request, args)))
        loader.start()
        loader.join()
        _, errors = spy.communicate(timeout=args.seconds + 30)
        if spy.returncode != 0 or not output.exists():
            raise RuntimeError(f"py-spy failed ({spy.returncode}): {errors.strip()[-2000:]}")
        return result_box[0], parse(output.read_text())


def tables(results: list[tuple[Cell, LoadResult, dict[str, Profile]]], args: argparse.Namespace) -> list[Table]:
    names = [f"{c.endpoint} {c.body} x{c.images}, {c.concurrency} conns" for c, _, _ in results]
    spec = SERVERS[args.server]
    summary = Table(f"Profiled load on {spec.label} ({args.seconds} s per cell, py-spy at {args.rate} Hz)",
                    ["", *names])  # fmt: skip
    summary.add("req/s while sampled", *(fmt(r.rps) for _, r, _ in results))
    summary.add("server CPU us/req (from /proc)", *(fmt(r.server_cpu_s / r.ok * 1e6) for _, r, _ in results))
    for thread in ("event loop", "other threads"):
        summary.add(
            f"{thread}: busy share of wall time",
            *(f"{p[thread].samples / (args.rate * r.seconds):.0%}" for _, r, p in results),
        )
        summary.add(f"{thread}: Python-sampled us/req", *(fmt(_us(p[thread].samples, r, args)) for _, r, p in results))
    out = [summary]
    for thread in ("event loop", "other threads"):
        steps = Table(f"{thread}: sampled us per request by step of the request path (inclusive)", ["step", *names])
        for step in STEPS:
            values = [_us(p[thread].by_step[step], r, args) for _, r, p in results]
            if any(v >= 0.5 for v in values):
                steps.add(step, *(fmt(v) for v in values))
        packages = Table(f"{thread}: sampled us per request by package (self time)", ["package", *names])
        totals: dict[str, float] = {}
        for _, r, p in results:
            for name, count in p[thread].self_by_package.items():
                totals[name] = totals.get(name, 0.0) + _us(count, r, args)
        for name in sorted(totals, key=lambda n: -totals[n])[: args.top]:
            packages.add(name, *(fmt(_us(p[thread].self_by_package[name], r, args)) for _, r, p in results))
        out += [steps, packages]
    return out


def _us(samples: int, result: LoadResult, args: argparse.Namespace) -> float:
    """Samples -> sampled (not idle) microseconds per successful request."""
    return samples / args.rate / result.ok * 1e6 if result.ok else float("nan")


def parse_cell(text: str) -> Cell:
    endpoint, body, images, concurrency = text.split(":")
    return Cell(endpoint, body, int(images), int(concurrency))


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__)
    parser.add_argument("--server", choices=list(SERVERS), default="default")
    parser.add_argument(
        "--cells", nargs="+", type=parse_cell, help="ENDPOINT:BODY:IMAGES:CONNS, e.g. reconstruct:raw:1:16"
    )
    parser.add_argument("--seconds", type=int, help="seconds of load and sampling per cell (default 5)")
    parser.add_argument("--rate", type=int, default=1000, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=15, help="packages shown")
    parser.add_argument("--store", type=Path, default=REPO / "checkpoints")
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    parser.add_argument("--client", choices=("wrk", "httpx"), default=default_client())
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"))
    args = parser.parse_args(argv)
    args.seconds = args.seconds or (1 if args.smoke else 5)
    args.cells = args.cells or [Cell("reconstruct", "raw", 1, 4 if args.smoke else 16)]
    args.max_requests, args.current_device = 1_000_000, args.device
    if not Path(args.py_spy).exists():
        raise SystemExit(f"py-spy not found ({args.py_spy}); pip install py-spy")
    info = machine()
    pixels = mnist_pixels(args.data_dir, max(cell.images for cell in args.cells))
    results = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-profile-") as logs,
        running([SERVERS[args.server]], args, Path(logs)) as servers,
    ):
        server = servers[args.server]
        for cell in args.cells:
            result, profiles = profile_cell(server, cell, args, pixels)
            results.append((cell, result, profiles))
    report("profile_service", tables(results, args), info, args.out,
           extra=[{"cell": vars(c), "result": vars(r), "profiles": {k: vars(v) for k, v in p.items()}}
                  for c, r, p in results])  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
