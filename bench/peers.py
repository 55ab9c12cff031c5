"""This service against the frameworks a user would pick instead: LitServe, Ray Serve, BentoML and MLServer.

Every framework serves the same checkpoint (the `stable` version of mlp2-p16) through the same
forward pass (bench/peer_servers/common.py), from its own virtual environment, which this script
creates from `bench/peer_servers/requirements/<framework>.txt` plus the project's torch version
(in `--venvs`, by default `.peer-venvs/`; reinstalled only when that list changes). None of their
dependencies enters the project's. Each is configured as its documentation recommends, with its
dynamic batching on (up to `--max-batch-size` requests, or 16 times as many images where the
framework counts images, waiting up to `--max-delay-ms`), one inference process.

One server runs at a time, so that no idle framework (Ray's raylet and GCS poll) takes CPU from
the one measured: in each round every framework in turn (the order rotates from round to round)
is started, checked, loaded with every cell it can serve, and stopped. The check compares its
reconstructions of real MNIST digits with the model's in this process: within 1e-5 for floats,
equal (at most one level apart) for uint8 pixels; a framework that differs stops the run.

Cells: the same digits, one or 256 per request, as each framework's JSON (`{"images": [[784
floats]]}`; MLServer speaks only the Open Inference Protocol: a V2 JSON FP32 tensor) and, where it
takes one, a binary body (raw uint8 pixels; the V2 binary extension). This service answers both
its REST and its V2 forms. Requests/s, images/s, p50/p99, errors, and the CPU time per request of
the server's whole process tree (HTTP workers, inference workers, Ray's daemons); the medians of
`--repeats` rounds, and each framework's ratio to this service in the same form, round by round.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import importlib.metadata
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import psutil

from bench import launch, serving, v2
from bench.common import REPO, Table, base_parser, code_state, default_data_dir, emit, fmt, machine, median, report
from bench.loadgen import LoadResult, Request, default_client, post_once, run_load
from bench.peer_servers.common import Reconstructor, load_model

PEER_DIR = REPO / "bench" / "peer_servers"
VENVS_ENV = "AE_PEER_VENVS"
START_DEADLINE_S = 300.0  # Ray starts its daemons, a proxy and a replica; on a busy 2-core machine
STOP_DEADLINE_S = 30.0
FLOAT_TOLERANCE = 1e-5
INFER = v2.INFER
JSON_FORMS = ("REST JSON", "V2 JSON")
BINARY_FORMS = ("REST raw", "V2 binary")


@dataclass(frozen=True)
class Framework:
    key: str
    label: str
    health: str  # GET path that answers 200 once the model is loaded
    routes: dict[str, str]  # form (REST JSON, REST raw, V2 JSON, V2 binary) -> POST path
    module: str | None = None  # the peer server's module (run in its venv); None: this service
    processes: str = ""  # what the process tree holds, for the fairness notes


FRAMEWORKS = {
    f.key: f
    for f in (
        Framework("service", "this service", "/readyz",
                  {"REST JSON": "/reconstruct", "REST raw": "/reconstruct", "V2 JSON": INFER, "V2 binary": INFER},
                  processes="one process: uvicorn's event loop, forward worker threads"),
        Framework("litserve", "LitServe", "/health", {"REST JSON": "/reconstruct"},
                  "bench.peer_servers.litserve_app"),
        Framework("ray", "Ray Serve", "/healthz", {"REST JSON": "/reconstruct", "REST raw": "/reconstruct-raw"},
                  "bench.peer_servers.ray_app"),
        Framework("bentoml", "BentoML", "/readyz", {"REST JSON": "/reconstruct", "REST raw": "/reconstruct-raw"},
                  "bench.peer_servers.bentoml_app"),
        Framework("mlserver", "MLServer", f"/v2/models/{serving.MODEL}/ready", {"V2 JSON": INFER},
                  "bench.peer_servers.mlserver_app"),
    )
}  # fmt: skip
PEERS = [key for key in FRAMEWORKS if key != "service"]


@dataclass(frozen=True)
class Cell:
    body: str  # "json" or "binary"
    images: int
    concurrency: int


def forms(framework: Framework, cell: Cell) -> list[str]:
    """The forms in which `framework` can serve `cell`: its JSON forms or its binary ones."""
    return [form for form in (JSON_FORMS if cell.body == "json" else BINARY_FORMS) if form in framework.routes]


def cells(args: argparse.Namespace) -> list[Cell]:
    if args.smoke:
        return [Cell("json", 1, 4), Cell("binary", 1, 4)]
    many = args.many_concurrency
    json = [Cell("json", 1, c) for c in args.concurrency]
    return [*json, Cell("json", args.many, many), Cell("binary", 1, args.binary_concurrency),
            Cell("binary", args.many, many)]  # fmt: skip


def seconds(cell: Cell, args: argparse.Namespace) -> int:
    """Long enough that the requests cut off in flight at the end (wrk counts only those answered) stay few."""
    return args.seconds if cell.images == 1 else args.many_seconds


# --------------------------------------------------------------------------- environments


def torch_pin() -> str:
    return f"torch=={importlib.metadata.version('torch')}"


def venv_python(key: str, venvs: Path, log_dir: Path) -> Path:
    """The framework's own virtual environment (created, or updated when its requirements change): its python."""
    requirements = PEER_DIR / "requirements" / f"{key}.txt"
    packages = ["-r", str(requirements), torch_pin(), "numpy", "safetensors"]
    wanted = hashlib.sha256(f"{sys.version}\n{requirements.read_text()}\n{packages}".encode()).hexdigest()
    home = venvs / key
    python, stamp = home / "bin" / "python", home / ".bench-installed"
    if stamp.exists() and stamp.read_text() == wanted and python.exists():
        return python
    emit(f"installing {key} into {home} (once; torch from pip's cache)")
    log = log_dir / f"install-{key}.log"
    steps = [[sys.executable, "-m", "venv", str(home)],
             [str(python), "-m", "pip", "install", "--disable-pip-version-check", *packages]]  # fmt: skip
    with log.open("wb") as out:
        for step in steps:
            if subprocess.run(step, stdout=out, stderr=subprocess.STDOUT, check=False).returncode:
                raise RuntimeError(f"installing {key} failed ({' '.join(step)}):\n{log.read_text()[-3000:]}")
    stamp.write_text(wanted)
    return python


def framework_version(key: str, python: Path | None) -> str:
    """The installed version of the framework's first requirement (this project's commit for the service)."""
    if python is None:
        return "commit " + code_state()
    first = next(line for line in (PEER_DIR / "requirements" / f"{key}.txt").read_text().splitlines()
                 if line.strip() and not line.startswith("#"))  # fmt: skip
    package = first.split("==")[0].split("[")[0].strip()
    found = subprocess.run([str(python), "-c", f"import importlib.metadata as m; print(m.version({package!r}))"],
                           capture_output=True, text=True, check=False)  # fmt: skip
    return f"{package} {found.stdout.strip() or '?'}"


# -------------------------------------------------------------------------------- servers


@dataclass
class Server(launch.Server):
    framework: Framework
    started_s: float = float("nan")  # seconds from spawn to ready
    stopped_cleanly: bool = True  # every process of its tree gone after SIGTERM, none killed
    tree: list[psutil.Process] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.framework.label

    def processes(self) -> list[psutil.Process]:
        """The process and its descendants now; the ones seen before are remembered, to be stopped."""
        try:
            now = [psutil.Process(self.process.pid), *psutil.Process(self.process.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            now = []
        self.tree = list({p.pid: p for p in [*self.tree, *now]}.values())
        return now

    def cpu_seconds(self) -> float:
        total = 0.0
        for process in self.processes():
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                times = process.cpu_times()
                total += times.user + times.system
        return total

    def stop(self, timeout: float) -> int:
        """SIGTERM to the main process, wait for its whole tree; SIGKILL what is left (and say so)."""
        self.processes()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        _, alive = psutil.wait_procs(self.tree, timeout=timeout)
        if alive:
            self.stopped_cleanly = False
            for process in alive:
                with contextlib.suppress(psutil.NoSuchProcess):
                    process.kill()
            psutil.wait_procs(alive, timeout=timeout)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)  # anything that left the tree (a daemon) but not the group
        return int(self.process.wait(timeout))


def command(framework: Framework, python: Path | None, port: int, args: argparse.Namespace) -> list[str]:
    if python is None or framework.module is None:
        return launch.service_command(port, args.store)
    return [str(python), "-m", framework.module, "--port", str(port), "--store", str(args.store),
            "--model", serving.MODEL, "--max-batch-size", str(args.max_batch_size),
            "--max-delay-ms", str(args.max_delay_ms)]  # fmt: skip


@contextlib.contextmanager
def running(framework: Framework, python: Path | None, args: argparse.Namespace, log: Path) -> Iterator[Server]:
    """One server in its own session (its daemons in its process group), ready; stopped on the way out."""
    port = launch.free_port()
    env = launch.environment({"AE_DEVICE": "cpu", "AE_LOG_LEVEL": args.log_level})
    with log.open("ab") as out:
        process = subprocess.Popen(command(framework, python, port, args), cwd=REPO, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)  # fmt: skip
    server = Server(process, port, log, framework)
    servers = {framework.key: server}
    with launch.stopped_on_exit(servers, STOP_DEADLINE_S):
        started = time.monotonic()
        server.wait_ready(framework.health, started + START_DEADLINE_S)
        server.started_s = time.monotonic() - started
        yield server


# ------------------------------------------------------------------------------- requests


def request_for(framework: Framework, form: str, pixels: np.ndarray) -> Request:
    """The same digits in `form`, at the path where `framework` serves it."""
    request = v2.request_for(form, "reconstruct", pixels)
    return dataclasses.replace(request, path=framework.routes[form])


def _post(url: str, request: Request) -> tuple[bytes, int | None]:
    """The reply's body, and the length of its JSON header where it has one (the V2 binary extension)."""
    body, headers = post_once(url, request)
    length = headers.get("Inference-Header-Content-Length")
    return body, int(length) if length else None


def reconstructions(form: str, body: bytes, header_length: int | None, images: int) -> np.ndarray:
    """The reconstructions in a reply: float32 (N, 784) from JSON, uint8 (N, 784) from binary forms."""
    if form == "REST raw":
        return np.frombuffer(body, np.uint8).reshape(images, -1)
    if form == "REST JSON":  # BentoML's batchable API answers the bare array, without the MSEs
        payload = orjson.loads(body)
        rows = payload if isinstance(payload, list) else payload["reconstructions"]
        return np.asarray(rows, np.float32).reshape(images, -1)
    head = orjson.loads(body[:header_length] if header_length else body)
    output = next(o for o in head["outputs"] if o["name"].startswith("reconstructions"))
    if form == "V2 JSON":
        return np.asarray(output["data"], np.float32).reshape(images, -1)
    size = output["parameters"]["binary_data_size"]
    return np.frombuffer(body[header_length : header_length + size], np.uint8).reshape(images, -1)


def difference(form: str, got: np.ndarray, expected: np.ndarray) -> float:
    """Largest difference from the in-process reconstructions: in [0, 1] units for floats, in levels for uint8."""
    if got.shape != expected.shape:
        raise ValueError(f"{form}: {got.shape} reconstructions for {expected.shape}")
    if form in BINARY_FORMS:
        levels = np.clip(np.round(expected * 255), 0, 255)
        return float(np.abs(got.astype(np.float32) - levels).max())
    return float(np.abs(got - expected).max())


def within_tolerance(form: str, diff: float) -> bool:
    return diff <= (1.0 if form in BINARY_FORMS else FLOAT_TOLERANCE)


def check(server: Server, form: str, pixels: np.ndarray, expected: np.ndarray) -> float:
    """The server's reconstructions of `pixels` against `expected`; the largest difference, or RuntimeError."""
    body, header_length = _post(server.url, request_for(server.framework, form, pixels))
    diff = difference(form, reconstructions(form, body, header_length, len(pixels)), expected)
    if not within_tolerance(form, diff):
        raise RuntimeError(f"{server.name} {form} differs from the model in this process by {diff}")
    return diff


# ------------------------------------------------------------------------------ measuring

Samples = dict[tuple[str, str, Cell], list[LoadResult]]  # (framework, form, cell)


def in_process_reconstructions(store: Path, pixels: np.ndarray) -> np.ndarray:
    """What every server should answer: the version the peers load, run here through the same forward pass."""
    return Reconstructor(load_model(str(store), serving.MODEL))(pixels.astype(np.float32) / 255)[0]


def measure(args: argparse.Namespace, pixels: np.ndarray, log_dir: Path) -> dict[str, Any]:
    grid = cells(args)
    pythons = {key: None if key == "service" else venv_python(key, args.venvs, log_dir) for key in args.frameworks}
    expected = in_process_reconstructions(args.store, pixels[:64])
    samples: Samples = {}
    diffs: dict[tuple[str, str], float] = {}
    started: dict[str, list[float]] = {}
    killed: dict[str, list[int]] = {}  # framework -> the rounds whose stop needed SIGKILL
    order = list(args.frameworks)
    for repeat in range(args.repeats):
        for key in order[repeat % len(order) :] + order[: repeat % len(order)]:  # rotate: no fixed position
            framework = FRAMEWORKS[key]
            with running(framework, pythons[key], args, log_dir / f"{key}.log") as server:
                started.setdefault(key, []).append(server.started_s)
                for form in framework.routes:
                    diffs[key, form] = max(diffs.get((key, form), 0.0), check(server, form, pixels[:64], expected))
                warm_up(server, pixels, args)
                for cell in grid:
                    for form in forms(framework, cell):
                        request = request_for(framework, form, pixels[: cell.images])
                        check_count(server, form, request)
                        before = server.cpu_seconds()
                        result = run_load(args.client, server.port, request, cell.concurrency, seconds(cell, args),
                                          args.max_requests)  # fmt: skip
                        result.server_cpu_s = server.cpu_seconds() - before
                        samples.setdefault((key, form, cell), []).append(result)
                        emit(f"[{repeat + 1}/{args.repeats}] {framework.label:12} {form:9} x{cell.images:<3} "
                             f"c={cell.concurrency:<3} {result.rps:9.0f} req/s p99 {result.p99_ms:7.1f} ms "
                             f"errors {result.errors}")  # fmt: skip
            if not server.stopped_cleanly:
                killed.setdefault(key, []).append(repeat + 1)
    return {"samples": samples, "diffs": diffs, "started": started, "killed": killed, "grid": grid,
            "versions": {key: framework_version(key, pythons[key]) for key in args.frameworks}}  # fmt: skip


def warm_up(server: Server, pixels: np.ndarray, args: argparse.Namespace) -> None:
    """Load every form a while, unmeasured: lazy set-up (first batches, allocators, caches) is not measured."""
    if not args.warmup_seconds:
        return
    for form in server.framework.routes:
        request = request_for(server.framework, form, pixels[:1])
        run_load(args.client, server.port, request, 16, args.warmup_seconds, args.max_requests)


def check_count(server: Server, form: str, request: Request) -> None:
    """The measured request itself answers 200 with one reconstruction per image: errors cannot pass for speed."""
    body, header_length = _post(server.url, request)
    got = reconstructions(form, body, header_length, request.images)
    if got.shape != (request.images, 784):
        raise RuntimeError(f"{server.name} {form}: {got.shape} reconstructions for {request.images} images")


# ------------------------------------------------------------------------------- reporting


def _paired(a: list[float], b: list[float]) -> float:
    """The median of per-round ratios."""
    return median(x / y if y else float("nan") for x, y in zip(a, b, strict=True))


def _cpu_per_request(result: LoadResult) -> float:
    return result.server_cpu_s / result.ok * 1e6 if result.ok else float("nan")


def tables(result: dict[str, Any], args: argparse.Namespace) -> list[Table]:
    samples: Samples = result["samples"]
    title = (
        f"(median of {args.repeats} rounds, {args.seconds} s a cell, {args.many_seconds} s with {args.many} images; "
        f"{args.client}; one server at a time)"
    )
    table = Table(
        f"Reconstructing MNIST digits: this service and the frameworks, side by side {title}",
        ["body", "images/request", "conns", "server", "form", "req/s", "images/s", "p50 ms", "p99 ms", "errors",
         "server CPU us/req", "req/s x this service", "CPU/req x this service"],
        notes=["x this service: the median of the per-round ratios to this service in the same form and cell."],
    )  # fmt: skip
    peers = [key for key in args.frameworks if key != "service"]
    summary = Table(
        "How many times this service's requests/s each framework's is, same cell, same form (median of rounds)",
        ["cell", *(FRAMEWORKS[key].label for key in peers)],
        notes=["Above 1: this service is faster. -: the framework has no such form (see the fairness notes)."],
    )
    for cell in result["grid"]:
        ratios: dict[str, list[str]] = {}
        for key in args.frameworks:
            for form in forms(FRAMEWORKS[key], cell):
                rs = samples.get((key, form, cell))
                if not rs:
                    continue
                ours = samples.get(("service", form, cell))  # the same form
                rps, cpu = [r.rps for r in rs], [_cpu_per_request(r) for r in rs]
                x_rps = _paired(rps, [r.rps for r in ours]) if ours else float("nan")
                x_cpu = _paired(cpu, [_cpu_per_request(r) for r in ours]) if ours else float("nan")
                table.add(cell.body, cell.images, cell.concurrency, FRAMEWORKS[key].label, form, fmt(median(rps)),
                          fmt(median(rps) * cell.images), fmt(median(r.p50_ms for r in rs), 1),
                          fmt(median(r.p99_ms for r in rs), 1), sum(r.errors for r in rs),
                          fmt(median(cpu)), fmt(x_rps, 2), fmt(x_cpu, 2))  # fmt: skip
                if key != "service" and ours:
                    ratios.setdefault(key, []).append(f"{fmt(_paired([r.rps for r in ours], rps), 2)}x ({form})")
        label = f"{cell.body}, {cell.images} image{'s' if cell.images > 1 else ''}, {cell.concurrency} conns"
        summary.add(label, *("; ".join(ratios.get(key, [])) or "-" for key in peers))
    about = Table(
        "The servers",
        ["server", "version", "forms", "start to ready s (median)", "largest difference from the model in-process",
         "stopped on SIGTERM"],
        notes=["Differences: in [0, 1] pixel units for JSON forms (tolerance 1e-5), in uint8 levels for binary forms "
               "(tolerance 1)."],
    )  # fmt: skip
    for key in args.frameworks:
        framework = FRAMEWORKS[key]
        diffs = ", ".join(f"{form} {result['diffs'][key, form]:.1e}" for form in framework.routes)
        killed = result["killed"].get(key)
        about.add(framework.label, result["versions"][key], ", ".join(framework.routes),
                  fmt(median(result["started"][key]), 1), diffs,
                  f"killed in round(s) {', '.join(map(str, killed))}" if killed else "cleanly")  # fmt: skip
    return [summary, table, about]


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__)
    parser.add_argument("--frameworks", nargs="+", choices=list(FRAMEWORKS), help="default: all (service first)")
    parser.add_argument("--venvs", type=Path, default=Path(os.environ.get(VENVS_ENV, REPO / ".peer-venvs")),
                        help=f"the frameworks' environments (${VENVS_ENV}; default .peer-venvs)")  # fmt: skip
    parser.add_argument("--store", type=Path, default=REPO / "checkpoints")
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    parser.add_argument("--client", choices=("wrk", "httpx"), default=default_client(), help="default: wrk if there")
    parser.add_argument("--seconds", type=int, help="seconds per cell and server (default 5)")
    parser.add_argument("--warmup-seconds", type=int, help="unmeasured load per form after each start (default 2)")
    parser.add_argument("--max-requests", type=int, default=200_000, help="requests per cell and server, at most")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64], help="single-image JSON connections")
    parser.add_argument("--many", type=int, default=256, help="images per request of the many-image cells")
    parser.add_argument("--many-concurrency", type=int, default=4, help="connections of the many-image cells")
    parser.add_argument("--many-seconds", type=int, help="seconds per many-image cell and server (default 10)")
    parser.add_argument("--binary-concurrency", type=int, default=16, help="connections of the 1-image binary cell")
    parser.add_argument("--max-batch-size", type=int, default=64, help="requests per batch (x16 images where counted)")
    parser.add_argument("--max-delay-ms", type=float, default=2.0, help="the frameworks' batching window")
    parser.add_argument("--log-level", default="warning", help="the service's AE_LOG_LEVEL")
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (1 if args.smoke else 3)
    args.seconds = args.seconds or (1 if args.smoke else 5)
    args.many_seconds = args.many_seconds or 2 * args.seconds
    args.warmup_seconds = (0 if args.smoke else 2) if args.warmup_seconds is None else args.warmup_seconds
    args.frameworks = args.frameworks or (["service", "litserve"] if args.smoke else list(FRAMEWORKS))
    if "service" not in args.frameworks:
        args.frameworks.insert(0, "service")  # every ratio is to this service
    if args.smoke:
        args.max_requests = min(args.max_requests, 2_000)
    info = machine()
    pixels = serving.mnist_pixels(args.data_dir, max(args.many, 64))
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as logs:
        result = measure(args, pixels, Path(logs))
    data = {key: v for key, v in result.items() if key not in ("samples", "grid")}
    data["cells"] = [{"framework": k, "form": f, **vars(c), "results": [vars(r) for r in rs]}
                     for (k, f, c), rs in result["samples"].items()]  # fmt: skip
    data["diffs"] = {f"{k} {f}": d for (k, f), d in result["diffs"].items()}
    report("peers", tables(result, args), info, args.out, extra=data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
