"""The inference core on its own: no HTTP imported, loaded and used as a second protocol would use it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from models import CheckpointStore
from service.core import (
    Batching,
    Catalog,
    CoreError,
    InvalidModelName,
    Overloaded,
    Pass,
    Runtime,
    UnknownModel,
    UnknownVersion,
)
from service.errors import CORE_ERRORS

pytestmark = pytest.mark.anyio
REPO = Path(__file__).resolve().parents[2]
BATCHING = Batching(max_batch_size=64, max_delay=0.0, queue_size=128, workers=1, large_pass_threads=1)


def test_the_core_imports_nothing_of_fastapi_or_starlette() -> None:
    check = "import sys, service.core; print(sorted({m.split('.')[0] for m in sys.modules} & {'fastapi', 'starlette'}))"
    done = subprocess.run([sys.executable, "-c", check], cwd=REPO, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_every_core_error_has_its_http_status() -> None:
    def subclasses(cls: type[CoreError]) -> set[type[CoreError]]:
        return set().union(*(subclasses(sub) | {sub} for sub in cls.__subclasses__()))

    assert subclasses(CoreError) == set(CORE_ERRORS)


async def test_the_catalogue_serves_and_refuses_without_http(store_root: Path, digits: np.ndarray) -> None:
    runtime = Runtime(torch.device("cpu"), BATCHING)
    catalog = await Catalog.load(CheckpointStore(store_root), runtime)
    try:
        assert (catalog.names(), catalog.versions("mlp2-p2"), len(catalog)) == (["mlp2-p2", "mlp2-p8"], [1, 2], 3)
        assert list(catalog.skipped) == ["mlp1-p2/1"]
        served = catalog.resolve("mlp2-p2", None)
        assert served.version == 2
        out = await served.submit(Pass.RECONSTRUCT_MSE, digits[:3])
        assert out["images"].shape == (3, 784)  # complete once resolved: its batcher runs and out["mse"].shape == (3,)
        with pytest.raises(UnknownModel) as unknown:
            catalog.resolve("nope", None)
        assert unknown.value.details == {"available": ["mlp2-p2", "mlp2-p8"]}
        with pytest.raises(UnknownVersion) as missing:
            catalog.resolve("mlp2-p8", 3)
        assert missing.value.details == {"available_versions": [1]}
        with pytest.raises(InvalidModelName, match="lower-case"):
            catalog.versions("Not_A_Name")
    finally:
        await catalog.close()
        runtime.close()
    with pytest.raises(Overloaded, match="model mlp2-p2 is busy"):
        served.submit(Pass.ENCODE, digits[:1])  # closed: refused, not queued
