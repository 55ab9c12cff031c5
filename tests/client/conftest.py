"""Live servers on the shipped checkpoints for the client's tests, the models in-process, real digits."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import torch
from clientsupport import BODY_LIMIT, KEY, LIMIT, SHIPPED, client_for
from liveserver import LiveServer, live_server

from aeclient import Client
from models import CheckpointStore
from training.data import ImageData


@pytest.fixture(params=["sync", "async"])
def connect(request: pytest.FixtureRequest) -> Iterator[Callable[..., Any]]:
    """(server, **options) -> a client of each kind in turn, closed after the test."""
    opened: list[Any] = []

    def make(server: LiveServer, **options: Any) -> Any:
        opened.append(client_for(request.param, server, **options))
        return opened[-1]

    yield make
    for client in opened:
        if isinstance(client, Client):
            client.close()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The shipped checkpoints behind an API key, with small request limits."""
    settings = {"api_key": KEY, "max_images_per_request": LIMIT, "max_body_bytes": BODY_LIMIT, "reload_interval": 0}
    with live_server(tmp_path_factory.mktemp("client-live"), SHIPPED, **settings) as running:
        yield running


@pytest.fixture(scope="session")
def test_digits(mnist: ImageData) -> np.ndarray:
    """1,000 MNIST test digits as (1000, 784) float32 in [0, 1] (8-bit values, as PNGs hold them)."""
    return mnist.test_images[:1000].numpy()


@pytest.fixture(scope="session")
def shipped() -> Callable[[str], torch.nn.Module]:
    """A shipped model, loaded in-process, by name."""
    store = CheckpointStore(SHIPPED)
    return lambda name: store.load_latest(name).model
