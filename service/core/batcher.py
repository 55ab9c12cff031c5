"""Micro-batching: requests for one model version share forward passes.

A batch leaves when it holds `max_batch_size` images (counted in images, not requests)
or when its oldest request has waited `max_delay` seconds. The forward pass runs in a
worker thread, so the event loop keeps accepting requests meanwhile; requests that
arrive during a pass form the next batch, and so do those that the pass's replies bring
back within a few turns of the event loop after it. Passes run one at a time, unless a
full batch waits behind a running one: then up to `workers` run at once. The queue is
bounded in images. The batcher knows nothing of models: it runs the `Forward` it is given.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from service.core.forward import Outputs, Pass

log = logging.getLogger(__name__)
SETTLE_TURNS = 8  # event-loop turns between forward passes (see _settle; the count: BENCHMARKS.md, serving, step 7)

# (what to compute, the batch's input arrays in order) -> outputs for their rows, concatenated; runs
# in a worker thread, so joining the arrays costs the event loop nothing
Forward = Callable[[Pass, list[np.ndarray]], Outputs]


class QueueFull(Exception):
    pass


class BatcherClosed(Exception):
    pass


@dataclass
class _Job:
    """One request: its rows may be split over several batches; `result` gets them back in order."""

    result: asyncio.Future[Outputs]
    parts: list[Outputs | None]


@dataclass
class _Item:
    what: Pass  # a batch runs one forward pass per Pass among its items
    inputs: np.ndarray
    job: _Job
    index: int  # which part of the job
    enqueued: float = field(default_factory=time.monotonic)

    def wanted(self) -> bool:
        return not self.job.result.done()  # cancelled (the client left) or failed: skip it


class MicroBatcher:
    def __init__(
        self,
        forward: Forward,
        *,
        max_batch_size: int,
        max_delay: float,
        queue_size: int,
        on_batch: Callable[[int], None] | None = None,
        executor: Executor | None = None,
        workers: int = 1,
    ) -> None:
        self._forward = forward
        self._executor = executor  # where forward passes run, with `workers` threads; None: asyncio's default pool
        self.workers = workers
        self.max_batch_size = max_batch_size
        self.max_delay = max_delay
        self.queue_size = queue_size
        self._on_batch = on_batch
        self._pending: deque[_Item] = deque()
        self.pending_images = 0
        self._wakeup = asyncio.Event()
        self._closing = False
        self._worker: asyncio.Task[None] | None = None
        self._passes: set[asyncio.Task[None]] = set()  # running, each with its settling turns

    def queued_images(self) -> int:
        return self.pending_images

    def _full_batch_waits(self) -> bool:
        return self.pending_images >= self.max_batch_size

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Stop accepting, finish everything already queued, then stop the worker."""
        self._closing = True
        self._wakeup.set()
        if self._worker is not None:
            await self._worker

    def submit(self, what: Pass, inputs: np.ndarray) -> asyncio.Future[Outputs]:
        """Queue `inputs` (rows), split into batch-sized chunks; the future gets their outputs in order.

        Cancelling the future (a client that left) drops whatever of it has not run yet.
        """
        if self._closing:
            raise BatcherClosed("shutting down")
        if self.pending_images + len(inputs) > self.queue_size:
            raise QueueFull(f"{self.pending_images} images queued, room for {self.queue_size}")
        starts = range(0, len(inputs), self.max_batch_size)
        job = _Job(asyncio.get_running_loop().create_future(), [None] * len(starts))
        was_idle = not self._pending
        self._pending.extend(
            _Item(what, inputs[start : start + self.max_batch_size], job, index) for index, start in enumerate(starts)
        )
        self.pending_images += len(inputs)
        if was_idle or self._full_batch_waits():
            self._wakeup.set()  # the worker waits for a first request or a full batch, not for each one
        return job.result

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending or not self._closing:
            full = self._full_batch_waits()
            if not self._pending or (self._passes and (not full or len(self._passes) >= self.workers)):
                # Nothing to do, or a pass runs and what waits may grow (or has no free worker):
                # wait for a request, a full batch, the end of a pass, or shutdown.
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            wait = self._pending[0].enqueued + self.max_delay - time.monotonic()
            if not full and wait > 0 and not self._closing:
                # Sleep until the batch is full, the delay is up, or shutdown; then send it, without
                # looking at the clock again: timers round to the millisecond, and re-checking
                # would spin through the last fraction of it.
                self._wakeup.clear()
                timer = loop.call_later(wait, self._wakeup.set)
                await self._wakeup.wait()
                timer.cancel()
            task = loop.create_task(self._pass(self._take_batch()))
            self._passes.add(task)
            task.add_done_callback(self._pass_ended)
        await asyncio.gather(*self._passes)

    async def _pass(self, batch: list[_Item]) -> None:
        await self._run_batch(batch)
        await self._settle()

    def _pass_ended(self, task: asyncio.Task[None]) -> None:
        self._passes.discard(task)
        self._wakeup.set()

    async def _settle(self) -> None:
        """A few turns of the event loop after a pass, unless a full batch already waits.

        Clients that send their next request when the reply comes would otherwise find the next
        pass gone with the stragglers of the last one: passes alternate between small batches.
        The turns let the replies go out and the requests they bring back join the next batch.
        """
        for _ in range(SETTLE_TURNS):
            if self._full_batch_waits() or self._closing:
                return
            await asyncio.sleep(0)

    def _take_batch(self) -> list[_Item]:
        batch: list[_Item] = []
        size = 0
        while self._pending and size + len(self._pending[0].inputs) <= self.max_batch_size:
            item = self._pending.popleft()
            size += len(item.inputs)
            batch.append(item)
        self.pending_images -= size
        return batch

    async def _run_batch(self, batch: list[_Item]) -> None:
        live = [item for item in batch if item.wanted()]  # a gone client costs nothing more
        if not live:
            return
        loop = asyncio.get_running_loop()
        for what in sorted({item.what for item in live}):
            group = [item for item in live if item.what == what]
            try:
                inputs = [item.inputs for item in group]
                if self._on_batch:
                    self._on_batch(sum(len(part) for part in inputs))  # one observation per forward pass
                outputs = await loop.run_in_executor(self._executor, self._forward, what, inputs)
                self._deliver(group, outputs)
            except Exception as e:  # the error reaches exactly the requests of this batch
                log.exception("forward pass failed for a batch of %d requests", len(group))
                for item in group:
                    if item.wanted():
                        item.job.result.set_exception(e)

    @staticmethod
    def _deliver(group: list[_Item], outputs: Outputs) -> None:
        rows = sum(len(item.inputs) for item in group)
        for key, value in outputs.items():
            if len(value) != rows:
                raise RuntimeError(f"forward returned {len(value)} rows of {key!r} for {rows} inputs")
        start = 0
        for item in group:
            stop = start + len(item.inputs)
            if item.wanted():
                _complete(item, {key: value[start:stop] for key, value in outputs.items()})
            start = stop


def _complete(item: _Item, part: Outputs) -> None:
    parts = item.job.parts
    parts[item.index] = part
    if len(parts) == 1:
        item.job.result.set_result(part)
    elif all(p is not None for p in parts):
        done = [p for p in parts if p is not None]
        item.job.result.set_result({key: np.concatenate([p[key] for p in done]) for key in part})
