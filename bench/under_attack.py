"""/healthz latency while hostile uploads are processed, against the same server at rest, in one run.

Starts the service (`python -m service.cli`, the shipped checkpoints, default settings) on a
loopback port and, with `--baseline DIR`, the service from another checkout (for instance
`git archive` of the commit before the decode budget) on another. Each round, for each server: a
quiet phase (nothing but the poller), then one phase per attack of bench/hostile.py in which
`--copies` clients each send that request back to back. Throughout each phase bench/poll.py, in a
process of its own, GETs /healthz every 10 ms over one keep-alive connection. The table gives, per
server and phase, /healthz p50 and p99 (medians of the rounds') and the slowest answer of all
rounds, beside what the hostile requests got. The script stops exactly the processes it started.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson

from bench import launch
from bench.common import REPO, Table, base_parser, emit, fmt, machine, median, report
from bench.hostile import Attack, attacks

START_DEADLINE_S = 180.0
STOP_DEADLINE_S = 30.0
POLL_EVERY_MS = 10
QUIET = "quiet (no other load)"


@contextlib.contextmanager
def servers(args: argparse.Namespace, logs: Path) -> Iterator[dict[str, launch.Server]]:
    """This checkout's service, and the baseline's with --baseline; stopped, only they, on the way out."""
    code = {"this checkout": REPO} | ({f"baseline ({args.baseline})": args.baseline} if args.baseline else {})
    started: dict[str, launch.Server] = {}
    with launch.stopped_on_exit(started, STOP_DEADLINE_S):
        for number, (name, root) in enumerate(code.items()):
            port, log = launch.free_port(), logs / f"server{number}.log"
            env = launch.environment({"AE_DEVICE": args.device, "PYTHONPATH": str(root)} | dict(args.env))
            # cwd: an empty folder, or `python -m` would import the service found there first
            process = launch.spawn(launch.service_command(port, args.store), log, env, cwd=logs)
            started[name] = launch.Server(process, port, log)
        deadline = time.monotonic() + START_DEADLINE_S
        for server in started.values():
            server.wait_ready("/readyz", deadline)
        yield started


class Attacker(threading.Thread):
    """Sends one hostile request back to back until stopped; what came back, and how long each took."""

    def __init__(self, url: str, attack: Attack, stopping: threading.Event) -> None:
        super().__init__(daemon=True)
        self.url, self.attack, self.stopping = url, attack, stopping
        self.statuses: Counter[str] = Counter()
        self.seconds: list[float] = []

    def run(self) -> None:
        headers = {"content-type": self.attack.content_type}
        with httpx.Client(base_url=self.url, timeout=120, trust_env=False) as client:
            while not self.stopping.is_set():
                started = time.perf_counter()
                try:
                    status = str(client.post(self.attack.path, content=self.attack.body, headers=headers).status_code)
                except httpx.HTTPError as e:
                    status = type(e).__name__
                self.statuses[status] += 1
                self.seconds.append(time.perf_counter() - started)


def phase(server: launch.Server, attack: Attack | None, args: argparse.Namespace) -> dict[str, Any]:
    """Poll /healthz for --seconds while --copies attackers send `attack` (none: quiet)."""
    command = [sys.executable, "-m", "bench.poll", server.url + "/healthz", str(args.seconds), str(POLL_EVERY_MS)]
    poller = subprocess.Popen(command, cwd=REPO, env=launch.environment({}), stdout=subprocess.PIPE, text=True)
    stopping = threading.Event()
    attackers = [Attacker(server.url, attack, stopping) for _ in range(args.copies)] if attack else []
    try:
        assert poller.stdout is not None and poller.stdout.readline().strip() == "ready"
        for attacker in attackers:
            attacker.start()
        polled = orjson.loads(poller.communicate(timeout=args.seconds + 120)[0])
    finally:
        stopping.set()
        for attacker in attackers:
            attacker.join()  # each finishes the request it is in: the next phase starts on an idle server
        if poller.poll() is None:
            poller.kill()
            poller.wait()
    statuses: Counter[str] = sum((a.statuses for a in attackers), Counter())
    return {"latencies_s": polled["latencies_s"], "errors": polled["errors"], "statuses": dict(statuses),
            "attack_seconds": [s for a in attackers for s in a.seconds]}  # fmt: skip


def measure(args: argparse.Namespace, hostile: dict[str, Attack], logs: Path) -> dict[tuple[str, str], list[Any]]:
    """Per (server, phase), one result per round; in each round every server goes through every phase."""
    results: dict[tuple[str, str], list[Any]] = {}
    with servers(args, logs) as running:
        for round_ in range(args.repeats):
            for name, server in running.items():
                for label, attack in [(QUIET, None), *hostile.items()]:
                    emit(f"round {round_ + 1}/{args.repeats}: {name}, {label}")
                    results.setdefault((name, label), []).append(phase(server, attack, args))
    return results


def table(results: dict[tuple[str, str], list[Any]], args: argparse.Namespace) -> Table:
    title = f"/healthz while hostile uploads are processed (median of {args.repeats} rounds, {args.seconds} s each)"
    columns = ["server", "load", "/healthz answers", "p50 ms", "p99 ms", "max ms", "/healthz errors",
               "hostile requests answered", "their statuses", "hostile p50 s"]  # fmt: skip
    out = Table(title, columns)
    for (server, label), rounds in results.items():
        latencies = [np.asarray(r["latencies_s"]) * 1e3 for r in rounds]
        statuses: Counter[str] = sum((Counter(r["statuses"]) for r in rounds), Counter())
        attack_seconds = [s for r in rounds for s in r["attack_seconds"]]
        out.add(server, label, fmt(median(len(x) for x in latencies)),
                fmt(median(float(np.percentile(x, 50)) for x in latencies), 1),
                fmt(median(float(np.percentile(x, 99)) for x in latencies), 1),
                fmt(max(float(x.max()) for x in latencies), 1), fmt(sum(r["errors"] for r in rounds)),
                fmt(sum(statuses.values())) if label != QUIET else "-",
                ", ".join(f"{code} x{count}" for code, count in sorted(statuses.items())) or "-",
                fmt(median(attack_seconds), 2) if attack_seconds else "-")  # fmt: skip
    out.notes.append(
        f"/healthz answers: per round, one GET every {POLL_EVERY_MS} ms after the previous answer, over one "
        f"keep-alive connection from its own process. Each attack: {args.copies} clients sending it back to back; "
        "'hostile requests answered' sums all rounds, including the requests each client finished after its phase."
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__)
    parser.add_argument("--store", type=Path, default=REPO / "checkpoints")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="the servers' AE_DEVICE")
    parser.add_argument("--baseline", type=Path, help="a checkout of the service to measure beside this one")
    parser.add_argument("--seconds", type=float, help="seconds per phase (default 5)")
    parser.add_argument("--copies", type=int, help="clients sending each attack at once (default 4)")
    parser.add_argument("--attacks", nargs="+", help="names of the attacks to run (default: all)")
    parser.add_argument(
        "--env",
        nargs="+",
        default=[],
        type=lambda text: tuple(text.split("=", 1)),
        metavar="AE_NAME=VALUE",
        help="settings for both servers (default: the service's defaults)",
    )
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (1 if args.smoke else 3)
    args.seconds = args.seconds or (1 if args.smoke else 5)
    args.copies = args.copies or (2 if args.smoke else 4)
    hostile = attacks(scale=0.02 if args.smoke else 1.0)
    if args.attacks:
        hostile = {name: hostile[name] for name in args.attacks}
    elif args.smoke:
        hostile = {name: hostile[name] for name in ("4 tall PNGs as base64", "8 MiB JSON body (the limit)")}
    info = machine()
    with tempfile.TemporaryDirectory(prefix="bench-attack-") as logs:
        results = measure(args, hostile, Path(logs))
    data = [{"server": server, "phase": label, "rounds": rounds} for (server, label), rounds in results.items()]
    report("under_attack", [table(results, args)], info, args.out, extra=data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
