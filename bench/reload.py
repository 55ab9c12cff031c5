"""Latency while the store changes under the service, against quiet, side by side in one run.

Starts the real service (`python -m service.cli`, its default settings: the store followed on
filesystem events and every 2 s) on a copy of the shipped store, and loads it with one-image raw
`/reconstruct` requests over `--connections` keep-alive connections (wrk, or httpx where wrk is
missing) in two phases: quiet (nothing changes), and reloading (a publisher in this process
changes the model's versions every `--period` seconds: it publishes a new version, a copy of
version 1, through the store, as ae-train does; promotes it; rolls it back; and again). Rounds
alternate which phase goes first (quiet, reloading; reloading, quiet; ...), so that a drift of
the machine's load falls on both; the tables show medians and every round. "reloads followed"
is how much `ae_store_reloads_total` rose during the phase: the changes the service took in.
The script stops exactly the server it started; the store copy goes with its temporary folder.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import re
import shutil
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from bench.common import REPO, Table, base_parser, default_data_dir, emit, fmt, machine, median, report
from bench.loadgen import LoadResult, Request, default_client, run_load
from bench.serving import MODEL, Cell, Server, ServerSpec, check_response, mnist_pixels, request_for, running
from models import CheckpointStore

PHASES = ("quiet", "reloading")
CELL = Cell("reconstruct", "raw", 1, 16)
SOURCE_VERSION = 1  # the shipped store's only version of each model: every published one is a copy of it


def publish_copy(store: CheckpointStore, name: str, source: int, promote: bool = False) -> int:
    """A new version of `name`, a copy of version `source`'s files, published through the store as ae-train does."""

    def write(folder: Path) -> None:
        for file in store.path(name, source).iterdir():
            shutil.copy(file, folder / file.name)

    return store.publish(name, write, promote=promote)


@dataclass
class Publisher:
    """Changes `name` in `store` every `period` seconds, in a thread: publish, promote, roll back, and again."""

    store: CheckpointStore
    name: str
    period: float
    actions: list[tuple[str, float]] = field(default_factory=list)  # (what, seconds the store call took)
    failure: BaseException | None = None  # what stopped it early, raised again on the way out
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Publisher:
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.failure is not None:
            raise RuntimeError(f"the publisher failed after {len(self.actions)} changes") from self.failure

    def _run(self) -> None:
        try:
            self._changes()
        except BaseException as e:
            self.failure = e

    def _changes(self) -> None:
        newest = max(self.store.versions(self.name))
        for what in itertools.cycle(("publish", "promote", "rollback")):
            started = time.perf_counter()
            if what == "publish":
                newest = publish_copy(self.store, self.name, SOURCE_VERSION)
            elif what == "promote":
                self.store.promote(self.name, newest, "bench.reload")
            else:
                self.store.rollback(self.name, "bench.reload")
            self.actions.append((what, time.perf_counter() - started))
            if self._stop.wait(self.period):
                return


def reloads(server: Server) -> float:
    """`ae_store_reloads_total` of the running server."""
    with urllib.request.urlopen(server.url + "/metrics", timeout=30) as response:
        text = response.read().decode()
    found = re.search(r"^ae_store_reloads_total (\S+)$", text, re.MULTILINE)
    if found is None:
        raise RuntimeError("no ae_store_reloads_total in /metrics")
    return float(found.group(1))


@dataclass
class Sample:
    round: int
    phase: str
    result: LoadResult
    changes: int  # store changes the publisher made meanwhile
    reloads: float  # how much ae_store_reloads_total rose meanwhile


def measure_phase(server: Server, store: CheckpointStore, phase: str, request: Request, args: argparse.Namespace,
                  round_: int) -> Sample:  # fmt: skip
    before = reloads(server)
    publisher = Publisher(store, args.model, args.period)
    with publisher if phase == "reloading" else contextlib.nullcontext():
        result = run_load(args.client, server.port, request, args.connections, args.seconds, args.max_requests)
    time.sleep(args.settle)  # the last change's reload lands in this phase's count, not the next one's
    sample = Sample(round_, phase, result, len(publisher.actions), reloads(server) - before)
    emit(f"[round {round_}] {phase:9} {result.rps:8.0f} req/s  p50 {result.p50_ms:6.1f} ms  "
         f"p99 {result.p99_ms:6.1f} ms  max {result.max_ms:7.1f} ms  errors {result.errors}  "
         f"changes {sample.changes}  reloads {sample.reloads:.0f}")  # fmt: skip
    return sample


def measure(args: argparse.Namespace, log_dir: Path, root: Path) -> list[Sample]:
    args.store = root
    store = CheckpointStore(root)
    spec = ServerSpec("reload", "service, following its store", "service", {"AE_DEFAULT_MODEL": args.model})
    cell = Cell(CELL.endpoint, CELL.body, CELL.images, args.connections)
    samples = []
    with running([spec], args, log_dir) as servers:
        server = servers[spec.key]
        request = request_for(cell, mnist_pixels(args.data_dir, 1), spec)
        check_response(server, cell, request)
        for round_ in range(1, args.repeats + 1):
            order = PHASES if round_ % 2 else PHASES[::-1]
            samples += [measure_phase(server, store, phase, request, args, round_) for phase in order]
    return samples


def tables(samples: list[Sample], args: argparse.Namespace) -> list[Table]:
    where = f"CUDA ({torch.cuda.get_device_name(0)})" if args.current_device == "cuda" else "CPU"
    summary = Table(
        f"Latency during reloads against quiet: one-image raw /{CELL.endpoint} of {args.model} on {where}, "
        f"{args.connections} connections (median of {args.repeats} rounds, {args.seconds} s a phase, {args.client})",
        ["phase", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors", "store changes", "reloads followed",
         "p99 x quiet"],
        notes=[f"Reloading: a publisher publishes a version, promotes it, rolls it back, one change every "
               f"{args.period:g} s. Errors: every round summed; store changes and reloads: every round summed. "
               "p99 x quiet: the median of the per-round ratios."],
    )  # fmt: skip
    by_phase = {phase: [s for s in samples if s.phase == phase] for phase in PHASES}
    quiet_p99 = {s.round: s.result.p99_ms for s in by_phase["quiet"]}
    for phase, rows in by_phase.items():
        results = [s.result for s in rows]
        summary.add(
            phase, fmt(median(r.rps for r in results)), fmt(median(r.p50_ms for r in results), 1),
            fmt(median(r.p95_ms for r in results), 1), fmt(median(r.p99_ms for r in results), 1),
            fmt(median(r.max_ms for r in results), 1), sum(r.errors for r in results),
            sum(s.changes for s in rows), fmt(sum(s.reloads for s in rows), 0),
            f"{median(s.result.p99_ms / quiet_p99[s.round] for s in rows):.2f}",
        )  # fmt: skip
    columns = ["round", "phase", "req/s", "p50 ms", "p99 ms", "max ms", "errors", "store changes", "reloads"]
    rounds = Table("Every round of the reload benchmark, in the order run", columns)
    for s in samples:
        r = s.result
        rounds.add(s.round, s.phase, fmt(r.rps), fmt(r.p50_ms, 1), fmt(r.p99_ms, 1), fmt(r.max_ms, 1), r.errors,
                   s.changes, fmt(s.reloads, 0))  # fmt: skip
    return [summary, rounds]


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__)
    parser.add_argument("--store", type=Path, default=REPO / "checkpoints", help="copied; the copy is changed")
    parser.add_argument("--data-dir", type=Path, default=default_data_dir(), help="MNIST, for the request's digit")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="the server's AE_DEVICE")
    parser.add_argument("--model", default=MODEL, help="the model loaded and changed (default: the service's default)")
    parser.add_argument(
        "--client", choices=("wrk", "httpx"), default=default_client(), help="default: wrk if installed"
    )
    parser.add_argument("--connections", type=int, help="closed-loop connections (default 16)")
    parser.add_argument("--seconds", type=int, help="seconds a phase (default 5)")
    parser.add_argument("--period", type=float, help="seconds between store changes while reloading (default 1)")
    parser.add_argument("--settle", type=float, default=0.5, help="seconds after a phase before reading /metrics")
    parser.add_argument("--max-requests", type=int, default=1_000_000, help="requests a phase, at most")
    parser.add_argument("--log-level", default="info", help="the server's AE_LOG_LEVEL")
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (1 if args.smoke else 3)
    args.seconds = args.seconds or (1 if args.smoke else 5)
    args.period = args.period or (0.3 if args.smoke else 1.0)
    args.connections = args.connections or (4 if args.smoke else CELL.concurrency)
    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    args.current_device = "cuda" if cuda else "cpu"
    info = machine()
    with tempfile.TemporaryDirectory(prefix="bench-reload-") as temporary:
        root = Path(temporary) / "store"
        shutil.copytree(args.store, root)
        samples = measure(args, Path(temporary), root)
    data: list[dict[str, Any]] = [{**vars(s), "result": vars(s.result)} for s in samples]
    report("reload", tables(samples, args), info, args.out, extra=data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
