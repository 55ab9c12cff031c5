"""A small real store, trained briefly through the real training and publishing code."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from liveserver import TEST_DEVICE

from models import CheckpointStore, get_config
from service.app import create_app
from service.settings import Settings
from training.data import ImageData
from training.loop import fit
from training.publish import publish
from training.recipes import get_recipe


@pytest.fixture(scope="session")
def store_root(tmp_path_factory: pytest.TempPathFactory, small_mnist: ImageData) -> Path:
    """mlp2-p2 versions 1 and 2 (stable), mlp2-p8 version 1, and a broken mlp1-p2 version 1."""
    root = tmp_path_factory.mktemp("store")
    store = CheckpointStore(root)
    recipe = get_recipe("fast").with_epochs(2)
    for name, seed in [("mlp2-p2", 0), ("mlp2-p2", 1), ("mlp2-p8", 0), ("mlp1-p2", 0)]:
        trained = fit(get_config(name), small_mnist, recipe, seed=seed)
        publish(store, name, name, trained, small_mnist, recipe, seed, promote=True)
    (store.path("mlp1-p2", 1) / "model.safetensors").write_bytes(b"truncated")
    return root


@pytest.fixture
def configure(store_root: Path) -> Callable[..., Settings]:
    """Settings for the test store, with any field changed (validated, like the environment would be)."""

    def make(**changes: Any) -> Settings:
        # torch_threads=0: leave the test process's thread count alone (one test checks the setting)
        values = {"store": store_root, "default_model": "mlp2-p2", "device": TEST_DEVICE, "torch_threads": 0, **changes}
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return make


@pytest.fixture
def settings(configure: Callable[..., Settings]) -> Settings:
    return configure()


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def digits(mnist: ImageData) -> np.ndarray:
    """Eight real MNIST test digits as (8, 784) float32, quantised to 8 bits like a PNG."""
    return mnist.test_images[:8].numpy()
