"""The inference ceiling: in-process images per second for each shipped configuration and batch size.

Two paths, each on the CPU and, when present, on CUDA:
- "model": `model(x)` on a tensor already on the device (encode and decode), nothing else;
- "service forward": `run_pass(model, device, Pass.RECONSTRUCT_PIXELS, ...)`, what the service's
  batcher calls per batch of raw /reconstruct requests: uint8 pixels in, scaled to floats, to the device,
  encode, decode, quantized back to uint8 pixels, numpy out (PNG and JSON replies' passes keep
  the floats; JSON's adds per-image MSEs).
The CPU tables compare torch thread counts (1, and torch's default, which the service uses).
Every (configuration, batch size) cell is timed for at least `--min-seconds` per repeat; the
repeats are interleaved across cells and the table shows the median.
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.common import REPO, Table, base_parser, default_data_dir, emit, fmt, machine, median, report
from models import Checkpoint, CheckpointStore
from service.core import Pass, run_pass, warm
from training.data import open_split

BATCH_SIZES = (1, 8, 64, 256, 512, 4096)
DEFAULT_THREADS = torch.get_num_threads()  # what the service runs with: torch's default
PATHS = ("model", "service forward")


def test_images(data_dir: Path, count: int) -> np.ndarray:
    """The first `count` MNIST test digits as (count, 784) float32 in [0, 1]."""
    pixels = open_split("mnist", data_dir, train=False, download=False).data[:count]
    return (pixels.reshape(len(pixels), -1).float() / 255.0).numpy()


def served_models(store: Path, device: torch.device) -> dict[str, Checkpoint]:
    """The latest valid version of every model in the store, loaded and warmed as the service does it."""
    found = CheckpointStore(store)
    models = {name: found.load_latest(name, device) for name in found.names()}
    for checkpoint in models.values():
        warm(checkpoint.model, device)
    return models


def forward_call(checkpoint: Checkpoint, device: torch.device, path: str, images: np.ndarray) -> Callable[[], Any]:
    model = checkpoint.model
    if path == "service forward":
        pixels = np.rint(images * 255).astype(np.uint8)  # as a raw request's body brings them
        return lambda: run_pass(model, device, Pass.RECONSTRUCT_PIXELS, [pixels])
    x = torch.from_numpy(images).to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def call() -> None:
        with torch.inference_mode():
            model(x)
        sync()  # a result is only there once the device is done

    return call


def images_per_second(call: Callable[[], Any], batch: int, min_seconds: float) -> float:
    call()  # warm: first-call allocations are not throughput
    calls, started = 0, time.perf_counter()
    while True:
        call()
        calls += 1
        elapsed = time.perf_counter() - started
        if elapsed >= min_seconds:
            return calls * batch / elapsed


Key = tuple[int, str, str, int]  # torch threads, path, configuration, batch size


def measure(
    models: dict[str, Checkpoint],
    device: torch.device,
    images: np.ndarray,
    threads: list[int],
    repeats: int,
    min_seconds: float,
) -> dict[Key, float]:
    """Median images/s per cell, the repeats interleaved across all cells and thread counts."""
    samples: dict[Key, list[float]] = {}
    for _ in range(repeats):
        for count in threads:
            torch.set_num_threads(count)
            for path in PATHS:
                for name, checkpoint in models.items():
                    for batch in BATCH_SIZES:
                        call = forward_call(checkpoint, device, path, images[:batch])
                        rate = images_per_second(call, batch, min_seconds)
                        samples.setdefault((count, path, name, batch), []).append(rate)
    return {key: median(values) for key, values in samples.items()}


def devices(choice: str) -> list[torch.device]:
    if choice == "all":
        return [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    return [torch.device(choice)]


def run(args: argparse.Namespace) -> tuple[list[Table], list[dict[str, Any]]]:
    images = test_images(args.data_dir, max(BATCH_SIZES))
    tables, rows = [], []
    for device in devices(args.device):
        models = served_models(args.store, device)
        if args.configs:
            models = {name: models[name] for name in args.configs}
        threads = args.threads if device.type == "cpu" else [torch.get_num_threads()]
        emit(f"measuring {len(models)} models on {device}, threads {threads}, {args.repeats} repeats")
        result = measure(models, device, images, threads, args.repeats, args.min_seconds)
        for count, path in itertools.product(threads, PATHS):
            where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {count} torch threads"
            table = Table(
                f"In-process images/s, {path}, {where} (median of {args.repeats})",
                ["configuration", *(f"batch {b:,}" for b in BATCH_SIZES)],
            )
            for name in models:
                table.add(name, *(fmt(result[count, path, name, b]) for b in BATCH_SIZES))
                rows.append({"device": str(device), "threads": count, "path": path, "config": name}
                            | {str(b): result[count, path, name, b] for b in BATCH_SIZES})  # fmt: skip
            tables.append(table)
    tables[-1].notes = [
        "model: `model(x)` on a tensor already on the device. service forward: `run_pass`, as the "
        "batcher calls it for raw /reconstruct requests (uint8 pixels in, encode, decode, uint8 pixels out)."
    ]
    return tables, rows


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__)
    parser.add_argument("--store", type=Path, default=REPO / "checkpoints")
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    parser.add_argument("--device", choices=("all", "cpu", "cuda"), default="all", help="all: CPU, and CUDA if present")
    parser.add_argument("--configs", nargs="+", help="default: every model in the store (smoke: two)")
    parser.add_argument("--min-seconds", type=float, help="timed seconds per cell and repeat (default 0.3)")
    parser.add_argument(
        "--threads", type=int, nargs="+", help=f"torch CPU thread counts to compare (default: 1 and {DEFAULT_THREADS})"
    )
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (2 if args.smoke else 5)
    args.min_seconds = args.min_seconds or (0.002 if args.smoke else 0.3)
    args.configs = args.configs or (["mlp1-p2", "mlp2-p16"] if args.smoke else None)
    args.threads = args.threads or ([1] if args.smoke else sorted({1, DEFAULT_THREADS}))
    info = machine()
    tables, rows = run(args)
    report("inference", tables, info, args.out, extra=rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
