"""A reload does not pause the service: no collection over everything loaded, and nothing retired is kept.

The catalogue freezes what it has loaded (`gc.freeze()`), so that the collector never walks torch's
and the models' objects while requests wait (BENCHMARKS.md, serving, step 1). Unfreezing them at
each reload to collect them paused the event loop 100 to 400 ms at every store change on 2 cores
(BENCHMARKS.md, "Reloads under load"). A retired version needs no such collection: it holds no
reference cycle, so it is freed when the catalogue lets it go, frozen or not.
"""

from __future__ import annotations

import asyncio
import gc
import shutil
import weakref
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import torch

from bench.reload import publish_copy
from models import CheckpointStore
from service.core import Batching, Catalog, Runtime

pytestmark = pytest.mark.anyio
BATCHING = Batching(max_batch_size=64, max_delay=0.0, queue_size=128, workers=1, large_pass_threads=1)
GRACE = 0.05  # seconds a removed version keeps answering


@pytest.fixture
def store(store_root: Path, tmp_path: Path) -> CheckpointStore:
    shutil.copytree(store_root, tmp_path / "store")
    return CheckpointStore(tmp_path / "store")


@pytest.fixture
async def catalog(store: CheckpointStore) -> AsyncIterator[Catalog]:
    runtime = Runtime(torch.device("cpu"), BATCHING)
    loaded = await Catalog.load(store, runtime, grace=GRACE)
    try:
        yield loaded
    finally:
        await loaded.close()
        runtime.close()


async def test_a_reload_collects_only_what_is_not_frozen(catalog: Catalog, store: CheckpointStore) -> None:
    frozen = gc.get_freeze_count()
    assert frozen > 0  # what the catalogue loaded
    at_start: list[int] = []

    def record(phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            at_start.append(gc.get_freeze_count())

    gc.callbacks.append(record)
    try:
        store.promote("mlp2-p2", 1, "test")
        assert await catalog.refresh()
        publish_copy(store, "mlp2-p2", 1)
        assert await catalog.refresh()
    finally:
        gc.callbacks.remove(record)
    assert catalog.resolve("mlp2-p2", None).version == 1 and catalog.versions("mlp2-p2") == [1, 2, 3]
    # every collection left the loaded objects frozen, unwalked (some frozen ones are freed by their reference
    # count meanwhile: unfreezing would have started a collection at 0)
    assert at_start and min(at_start) > 0.9 * frozen
    assert gc.get_freeze_count() > frozen  # version 3, loaded meanwhile, frozen too


async def test_a_retired_version_is_freed_though_it_was_frozen(catalog: Catalog, store: CheckpointStore) -> None:
    version = publish_copy(store, "mlp2-p2", 1)
    assert await catalog.refresh()
    served = catalog.resolve("mlp2-p2", version)
    alive: list[weakref.ref[Any]] = [
        weakref.ref(served),
        weakref.ref(served.checkpoint.model),
        weakref.ref(served.batcher),
    ]
    assert gc.is_tracked(served.checkpoint.model)
    del served
    shutil.rmtree(store.path("mlp2-p2", version))
    gc.disable()  # no automatic collection could free it either: only its reference count
    try:
        assert await catalog.refresh()
        assert catalog.versions("mlp2-p2") == [1, 2]
        for _ in range(200):
            if all(ref() is None for ref in alive):
                break
            await asyncio.sleep(0.01)
    finally:
        gc.enable()
    assert [ref() is None for ref in alive] == [True, True, True]
