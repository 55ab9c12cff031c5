"""A 10,000-image encode job through aeclient, against a hand-written loop of raw httpx requests and the JSON path.

One real service (`python -m service.cli`, default settings, the shipped checkpoints, its default
model mlp2-p16) serves every variant; per round each variant encodes the same images once, in turn
(the order rotating from round to round), so they are compared side by side, and the tables show
the median of `--repeats` rounds, wall seconds and this process's CPU seconds (the client's side). Each
variant's HTTP client is made and warmed (one untimed job) before the first round: the client has
read the service's limits by then, as the loop knows its chunk size. The codes of every variant are
checked against the hand-written loop's.

Variants, per chunk size (images per request):
- hand-written loop, raw: httpx.Client, one POST /encode of uint8 bytes per chunk in turn, float32 back;
- aeclient, raw, 1 in flight: the same requests through the client (the like-for-like comparison);
- aeclient, raw, 4 in flight (its default), sync and async;
- aeclient, JSON, 1 in flight: floats in a JSON body (orjson), JSON back;
- hand-written loop, JSON: httpx's json= (the standard library's encoder), as a first script would.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import httpx
import numpy as np

from aeclient import AsyncClient, Client
from bench import launch
from bench.common import REPO, Table, base_parser, default_data_dir, emit, fmt, machine, median, ratio, report
from bench.inference import test_images

START_DEADLINE_S = 180.0
STOP_DEADLINE_S = 30.0
RAW = "application/octet-stream"
Job = Callable[[np.ndarray], np.ndarray]


def hand_loop(url: str, chunk: int, transport: str) -> tuple[Job, Callable[[], None]]:
    """The loop a user would write with httpx alone: one request per chunk, in turn."""
    http = httpx.Client(base_url=url, timeout=120)

    def raw(images: np.ndarray) -> np.ndarray:
        parts = []
        for start in range(0, len(images), chunk):
            body = images[start : start + chunk].tobytes()
            reply = http.post("/encode", content=body, headers={"content-type": RAW, "accept": RAW})
            reply.raise_for_status()
            rows, width = (int(n) for n in reply.headers["x-shape"].split(","))
            parts.append(np.frombuffer(reply.content, "<f4").reshape(rows, width))
        return np.concatenate(parts)

    def json(images: np.ndarray) -> np.ndarray:
        parts = []
        for start in range(0, len(images), chunk):
            floats = (images[start : start + chunk] / 255).tolist()
            reply = http.post("/encode", json={"images": floats})
            reply.raise_for_status()
            parts.append(np.asarray(reply.json()["latents"], np.float32))
        return np.concatenate(parts)

    return (raw if transport == "raw" else json), http.close


def through_client(url: str, chunk: int, transport: Literal["raw", "json"],
                   concurrency: int) -> tuple[Job, Callable[[], None]]:  # fmt: skip
    client = Client(url, chunk_size=chunk, transport=transport, concurrency=concurrency, timeout=120)
    return client.encode, client.close


def through_async_client(url: str, chunk: int, concurrency: int) -> tuple[Job, Callable[[], None]]:
    """The async client on an event loop of its own, kept for all rounds (its connections stay open)."""
    loop = asyncio.new_event_loop()
    client = AsyncClient(url, chunk_size=chunk, concurrency=concurrency, timeout=120)

    def close() -> None:
        loop.run_until_complete(client.aclose())
        loop.close()

    return lambda images: loop.run_until_complete(client.encode(images)), close


VARIANTS: dict[str, Callable[[str, int], tuple[Job, Callable[[], None]]]] = {
    "hand-written loop, raw": lambda url, chunk: hand_loop(url, chunk, "raw"),
    "aeclient, raw, 1 in flight": lambda url, chunk: through_client(url, chunk, "raw", 1),
    "aeclient, raw, 4 in flight": lambda url, chunk: through_client(url, chunk, "raw", 4),
    "aeclient async, raw, 4 in flight": lambda url, chunk: through_async_client(url, chunk, 4),
    "aeclient, JSON, 1 in flight": lambda url, chunk: through_client(url, chunk, "json", 1),
    "hand-written loop, JSON": lambda url, chunk: hand_loop(url, chunk, "json"),
}
BASELINE = "hand-written loop, raw"
LIKE_FOR_LIKE = "aeclient, raw, 1 in flight"


def measure(url: str, images: np.ndarray, chunk: int, repeats: int) -> dict[str, dict[str, list[float]]]:
    """Wall and CPU seconds (this process: the client's side) per job of each variant, `repeats` rounds; within a
    round the variants run in turn, each round starting one further along, so none always follows the same."""
    jobs, closers, reference = {}, [], None
    for name, make in VARIANTS.items():
        jobs[name], close = make(url, chunk)
        closers.append(close)
        codes = jobs[name](images)  # warm: connections open, limits read
        reference = codes if reference is None else reference
        np.testing.assert_allclose(codes, reference, atol=1e-5, err_msg=name)
    samples: dict[str, dict[str, list[float]]] = {name: {"wall": [], "cpu": []} for name in jobs}
    names = list(jobs)
    try:
        for round_ in range(repeats):
            for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                wall, cpu = time.perf_counter(), time.process_time()
                jobs[name](images)
                samples[name]["cpu"].append(time.process_time() - cpu)
                samples[name]["wall"].append(time.perf_counter() - wall)
    finally:
        for close in closers:
            close()
    return samples


def table(samples: dict[str, dict[str, list[float]]], count: int, chunk: int, repeats: int) -> Table:
    """Medians, and each variant's speed against the loop's as the median of the rounds' ratios: paired within a
    round, the ratio leaves out most of what a busy machine adds to both."""
    result = Table(
        f"Encoding {count:,} images, {chunk:,} per request (median of {repeats})",
        ["variant", "seconds", "images/s", "x hand-written raw loop", "client CPU seconds"],
    )
    base = samples[BASELINE]["wall"]
    paired = {
        name: median(b / w for b, w in zip(base, sample["wall"], strict=True)) for name, sample in samples.items()
    }
    for name, sample in samples.items():
        wall = median(sample["wall"])
        result.add(name, fmt(wall, 3), fmt(count / wall), f"{paired[name]:.2f}x", fmt(median(sample["cpu"]), 3))
    like = paired[LIKE_FOR_LIKE]
    base_cpu = median(samples[BASELINE]["cpu"])
    cpu = ratio(median(samples[LIKE_FOR_LIKE]["cpu"]), base_cpu)
    result.notes.append(f"Target: aeclient within 10% of the hand-written loop, like for like ({LIKE_FOR_LIKE}): "
                        f"{like:.2f}x the loop's speed, {'met' if like >= 0.9 else 'NOT met'}; its CPU {cpu:.2f}x the "
                        f"loop's ({fmt(base_cpu, 3)} s). 'x hand-written raw loop': the median over the rounds "
                        "of the loop's seconds over the variant's in the same round. Client CPU: this process's, all "
                        "threads (the server runs in another).")  # fmt: skip
    return result


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__)
    parser.add_argument("--store", type=Path, default=REPO / "checkpoints")
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="the server's (AE_DEVICE)")
    parser.add_argument("--images", type=int, help="images per job (default 10,000; smoke: 512)")
    parser.add_argument("--chunks", type=int, nargs="+", help="images per request (default: 4096, the service's "
                        "limit, and 256; smoke: 128)")  # fmt: skip
    args = parser.parse_args(argv)
    count = args.images or (512 if args.smoke else 10_000)
    chunks = args.chunks or ([128] if args.smoke else [4096, 256])
    repeats = args.repeats or (1 if args.smoke else 21)
    images = np.rint(test_images(args.data_dir, count) * 255).astype(np.uint8)
    info: dict[str, Any] = machine()
    with tempfile.TemporaryDirectory() as scratch:
        port = launch.free_port()
        env = launch.environment({"AE_DEVICE": args.device})
        log = Path(scratch) / "server.log"
        server = launch.Server(launch.spawn(launch.service_command(port, args.store), log, env, REPO), port, log)
        try:
            server.wait_ready("/readyz", time.monotonic() + START_DEADLINE_S)
            emit(f"server ready on port {port}; {count:,} images, chunks {chunks}, {repeats} rounds")
            tables = [table(measure(server.url, images, chunk, repeats), count, chunk, repeats) for chunk in chunks]
        finally:
            server.stop(STOP_DEADLINE_S)
    report("client", tables, info, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
