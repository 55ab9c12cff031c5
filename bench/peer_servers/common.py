"""What every peer server shares: its command line, the checkpoint the service serves, the same forward pass.

Every peer answers the same requests as the service (bench/peers.py sends the same bodies to all):

- JSON: POST {"images": [[784 floats in [0, 1]], ...]} -> {"reconstructions": [[784 floats]], "mse": [floats]}
  (MLServer speaks only the Open Inference Protocol: an FP32 [N, 784] tensor named "images" in, "reconstructions"
  and "mse" tensors out);
- raw, where the framework can take a body as bytes: N x 784 uint8 pixels in, N x 784 uint8 out, quantised
  as the service quantises them (x 255, rounded half to even, clamped).
"""

from __future__ import annotations

import argparse
import socket

import numpy as np
import torch

from models import Autoencoder, CheckpointStore

PIXELS = 784


def parser(description: str | None) -> argparse.ArgumentParser:
    """The options bench/peers.py passes to every peer server."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--store", required=True, help="the checkpoint store the service serves")
    p.add_argument("--model", default="mlp2-p16")
    p.add_argument("--max-batch-size", type=int, default=64, help="requests (or images, where the framework counts "
                   "images) one forward pass may take")  # fmt: skip
    p.add_argument("--max-delay-ms", type=float, default=2.0, help="how long a batch waits for more requests")
    return p


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on `host` now, for a framework's side servers (gRPC, metrics) that cannot be turned off."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def load_model(store: str, name: str) -> Autoencoder:
    """The version the service serves by default: the model's `stable` alias, else its latest version."""
    checkpoints = CheckpointStore(store)
    version = checkpoints.stable(name)
    checkpoint = checkpoints.load(name, version) if version is not None else checkpoints.load_latest(name)
    return checkpoint.model.eval()


class Reconstructor:
    """images float32 (N, 784) in [0, 1] -> reconstructions float32 (N, 784) and per-image MSE (N,)."""

    def __init__(self, model: Autoencoder) -> None:
        self.model = model

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
            out = self.model(x)
            mse = (out - x).square().mean(dim=1)
        return out.numpy(), mse.numpy()

    def raw(self, body: bytes) -> bytes:
        """N x 784 uint8 pixels -> N x 784 uint8 reconstructions; ValueError for a body of the wrong length."""
        if not body or len(body) % PIXELS:
            raise ValueError(f"the body must be N x {PIXELS} uint8 pixels, got {len(body)} bytes")
        images = np.frombuffer(body, np.uint8).reshape(-1, PIXELS).astype(np.float32) / 255
        return quantise(self(images)[0])


def quantise(images: np.ndarray) -> bytes:
    """[0, 1] floats -> uint8 bytes, rounded half to even and clamped, as the service's raw replies."""
    return np.clip(np.round(images * 255), 0, 255).astype(np.uint8).tobytes()


def split(rows: np.ndarray, counts: list[int]) -> list[np.ndarray]:
    """A batch's rows back into the requests they came from (`counts` rows each)."""
    return np.split(rows, np.cumsum(counts)[:-1])
