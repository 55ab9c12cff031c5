"""Where forward passes run: the device, the worker threads, the batching limits, the torch thread policy."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from service.core.batcher import Forward
from service.core.forward import Outputs, Pass

LARGE_PASS = 64  # images; a smaller forward pass runs on one torch thread


@dataclass(frozen=True)
class Batching:
    """The limits every model version's batcher shares (the service's settings resolve them per device)."""

    max_batch_size: int  # images in one forward pass, at most
    max_delay: float  # seconds a batch may wait to fill
    queue_size: int  # images queued per model version, at most
    workers: int  # forward passes at once, per model version when full batches wait, and in all
    large_pass_threads: int  # torch threads for a pass of LARGE_PASS images or more


class ModelMetrics(Protocol):
    """What the core reports of each served version (the service's Prometheus metrics implement it)."""

    def batch_observer(self, name: str, version: int) -> Callable[[int], None]:
        """Called with the images of each forward pass."""
        ...

    def watch_queue(self, name: str, version: int, queued_images: Callable[[], int]) -> None: ...

    def forget(self, name: str, version: int) -> None:
        """The version is unloaded: its series end."""
        ...

    def serving(self, loaded: dict[str, int]) -> None:
        """What is served changed: the number of versions loaded per model now."""
        ...


class Runtime:
    """One pool of worker threads for every model version's passes, on one device."""

    def __init__(self, device: torch.device, batching: Batching, metrics: ModelMetrics | None = None) -> None:
        self.device = device
        self.batching = batching
        self.metrics = metrics
        self.pool = ThreadPoolExecutor(batching.workers, "forward")  # each thread sets its own torch threads

    def close(self) -> None:
        """Once every batcher is closed: let the worker threads finish and end."""
        self.pool.shutdown()


def on_torch_threads(forward: Forward, threads: int) -> Forward:
    """`forward` with `threads` torch threads for a large pass and one for a small one.

    A second thread speeds a large pass up but slows a small one down, badly so under load,
    when it waits for a core that the event loop and the clients hold (BENCHMARKS.md, serving,
    step 5).
    """

    def run(what: Pass, parts: list[np.ndarray]) -> Outputs:
        torch.set_num_threads(threads if sum(len(part) for part in parts) >= LARGE_PASS else 1)  # this thread's
        return forward(what, parts)

    return run
