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
    DECODABLE,
    LATENT_LIMIT,
    Batching,
    Catalog,
    CoreError,
    InvalidModelName,
    Overloaded,
    Pass,
    Runtime,
    UndecodableLatents,
    UnknownModel,
    UnknownVersion,
    check_decodable,
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


async def test_latents_beyond_the_limit_are_refused_before_any_pass_and_harm_no_other_request() -> None:
    runtime = Runtime(torch.device("cpu"), BATCHING)
    catalog = await Catalog.load(CheckpointStore(REPO / "checkpoints"), runtime)  # trained: its decoders overflow
    try:
        served = catalog.resolve("mlp2-p2", None)
        edge = np.array([[LATENT_LIMIT, -LATENT_LIMIT]], np.float32)
        beyond = np.array([[0, 0], [3.4e38, -3.4e38]], np.float32)
        for what in (Pass.DECODE, Pass.DECODE_PIXELS):
            with pytest.raises(UndecodableLatents) as refused:
                served.submit(what, beyond)
            assert refused.value.details == {"index": 1} and "beyond +-1e+06" in str(refused.value)
            out = check_decodable(await served.submit(what, edge), "mlp2-p2")  # at the limit: an image
            assert out["images"].shape == (1, 784) and np.isfinite(out["images"]).all()
    finally:
        await catalog.close()
        runtime.close()


def test_a_row_whose_image_is_not_finite_fails_alone() -> None:
    """The net under the limit: the pass flags each row, and only the request owning a bad one fails."""
    images = np.zeros((2, 784), np.float32)
    assert check_decodable({"images": images, DECODABLE: np.array([True, True])}, "m")["images"] is images
    with pytest.raises(UndecodableLatents, match=r"latents\[1\].*its image is not finite"):
        check_decodable({"images": images, DECODABLE: np.array([True, False])}, "m")
