"""A served model version: its checkpoint, loaded and warmed, with its running batcher."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch

from models import Checkpoint, CheckpointStore
from service.core.batcher import BatcherClosed, MicroBatcher, QueueFull
from service.core.errors import Overloaded
from service.core.forward import Outputs, Pass, check_latents, run_pass, warm
from service.core.runtime import Runtime, on_torch_threads


@dataclass(frozen=True, eq=False)
class ServedModel:
    checkpoint: Checkpoint
    device: torch.device
    batcher: MicroBatcher  # started: requests for this version queue here
    map_points: np.ndarray  # the test set on the 2-D map, (N, 2)
    map_labels: np.ndarray  # their digits, (N,)
    # (name, value) header pairs naming this version, for every reply it gives (made once, not per request)
    answered_by: tuple[tuple[bytes, bytes], ...]

    @classmethod
    async def load(cls, store: CheckpointStore, name: str, version: int, runtime: Runtime) -> ServedModel:
        """A version of the store, loaded and warmed in a forward worker, its batcher started (on the event loop).

        A broken version raises CheckpointError.
        """
        loop = asyncio.get_running_loop()
        checkpoint = await loop.run_in_executor(runtime.pool, _load_and_warm, store, name, version, runtime.device)
        return cls.start(checkpoint, runtime)

    @classmethod
    def start(cls, checkpoint: Checkpoint, runtime: Runtime) -> ServedModel:
        """`checkpoint` served: its batcher built and started (on the event loop)."""
        batching, metrics, name, version = runtime.batching, runtime.metrics, checkpoint.name, checkpoint.version
        forward = partial(run_pass, checkpoint.model, runtime.device)
        batcher = MicroBatcher(
            on_torch_threads(forward, batching.large_pass_threads),
            max_batch_size=batching.max_batch_size,
            max_delay=batching.max_delay,
            queue_size=batching.queue_size,
            on_batch=metrics.batch_observer(name, version) if metrics else None,
            executor=runtime.pool,
            workers=batching.workers,
        )
        if metrics:
            metrics.watch_queue(name, version, batcher.queued_images)
        batcher.start()
        latents = checkpoint.latents
        points, labels = latents.to_map(latents.codes).numpy(), latents.labels.numpy()
        answered_by = ((b"x-model", name.encode()), (b"x-model-version", str(version).encode()))
        return cls(checkpoint, runtime.device, batcher, points, labels, answered_by)

    @property
    def name(self) -> str:
        return self.checkpoint.name

    @property
    def version(self) -> int:
        return self.checkpoint.version

    @property
    def latent_size(self) -> int:
        return self.checkpoint.config.latent_size

    def submit(self, what: Pass, inputs: np.ndarray) -> asyncio.Future[Outputs]:
        """Queue `inputs` (rows) for passes of `what`; cancelling the future drops what has not run yet."""
        if what.takes_codes:
            check_latents(inputs, self.name)
        try:
            return self.batcher.submit(what, inputs)
        except (QueueFull, BatcherClosed) as e:
            raise Overloaded(self.name, str(e)) from None

    def to_map(self, codes: np.ndarray) -> np.ndarray:
        """Latent codes -> their positions on the 2-D map."""
        return self.checkpoint.latents.to_map(torch.from_numpy(codes)).numpy()

    async def close(self) -> None:
        """Refuse new requests, answer the queued ones, stop the batcher."""
        await self.batcher.close()

    def summary(self) -> dict[str, Any]:
        meta = self.checkpoint.metadata
        return {
            "name": self.name,
            "version": self.version,
            "latent_size": self.latent_size,
            "parameters": meta.get("parameters"),
            "architecture": meta["architecture"],
            "dataset": meta["dataset"].get("name"),
            "recipe": meta.get("recipe", {}).get("name"),
            "epochs": meta.get("epochs"),
            "metrics": meta["metrics"],
            "train_seconds": meta.get("timings", {}).get("train_seconds"),
            "created": meta.get("created"),
        }


def _load_and_warm(store: CheckpointStore, name: str, version: int, device: torch.device) -> Checkpoint:
    checkpoint = store.load(name, version, device)
    warm(checkpoint.model, device)
    return checkpoint
