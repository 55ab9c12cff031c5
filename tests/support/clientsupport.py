"""What the client's tests share: the test server's settings, both clients behind one face, the server's
request counts, the models in-process, digits as PNG files."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from liveserver import REPO, LiveServer
from pngs import encode_png
from prometheus_client.parser import text_string_to_metric_families

from aeclient import AsyncClient, Client

SHIPPED = REPO / "checkpoints"
KEY = "s3cret"
LIMIT = 64  # images per request on the test server: jobs of more are split
BODY_LIMIT = 200_000  # bytes per body: a JSON job of more than 9 images is split by size


class BlockingAsync:
    """The asynchronous client, each call awaited in an event loop of its own (with a client of its own)."""

    def __init__(self, url: str, **options: Any) -> None:
        self.url, self.options = url, options

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            async def run() -> Any:
                async with AsyncClient(self.url, **self.options) as client:
                    return await getattr(client, name)(*args, **kwargs)

            return asyncio.run(run())

        return call


def client_for(kind: str, server: LiveServer, **options: Any) -> Any:
    """A Client ("sync"), or the AsyncClient behind BlockingAsync ("async"), of `server`."""
    return Client(server.url, **options) if kind == "sync" else BlockingAsync(server.url, **options)


def requests_seen(server: LiveServer, endpoint: str, status: int | None = None) -> float:
    """Requests the server has answered on `endpoint` (with `status`), from its /metrics."""
    with server.client() as http:
        text = http.get("/metrics", headers={"authorization": f"Bearer {KEY}"}).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "ae_requests_total" and sample.labels["endpoint"] == endpoint
        and (status is None or sample.labels["status"] == str(status))
    )  # fmt: skip


def encode_in_process(model: torch.nn.Module, images: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model.encode(torch.from_numpy(np.asarray(images, np.float32).reshape(len(images), -1))).numpy()


def decode_in_process(model: torch.nn.Module, latents: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model.decode(torch.from_numpy(np.asarray(latents, np.float32))).numpy()


def write_pngs(images: np.ndarray, folder: Path) -> list[Path]:
    """Digits as 8-bit greyscale 28 x 28 PNG files, named by position."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, image in enumerate(images):
        paths.append(folder / f"digit{index:03d}.png")
        paths[-1].write_bytes(encode_png(image))
    return paths
