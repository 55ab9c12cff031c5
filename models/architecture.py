"""Fully connected autoencoders: an architecture is a small frozen config plus a builder."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU}


@dataclass(frozen=True)
class AutoencoderConfig:
    hidden_sizes: tuple[int, ...]  # encoder widths, first to last; the decoder mirrors them
    latent_size: int  # p, the size of the code
    input_size: int = 784  # 28 x 28 MNIST pixels, flattened
    activation: str = "tanh"  # the reference report's choice
    batch_norm: bool = False  # BatchNorm1d after each hidden Linear, before the activation

    def __post_init__(self) -> None:
        if not self.hidden_sizes or any(h < 1 for h in self.hidden_sizes):
            raise ValueError(f"hidden_sizes must be positive widths, got {self.hidden_sizes}")
        if self.latent_size < 1 or self.input_size < 1:
            raise ValueError("latent_size and input_size must be positive")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; valid: {sorted(ACTIVATIONS)}")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "hidden_sizes": list(self.hidden_sizes)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AutoencoderConfig:
        return cls(
            hidden_sizes=tuple(int(h) for h in data["hidden_sizes"]),
            latent_size=int(data["latent_size"]),
            input_size=int(data.get("input_size", 784)),
            activation=str(data.get("activation", "tanh")),
            batch_norm=bool(data.get("batch_norm", False)),
        )


# Rows per forward pass of encode_all/decode_all: whole data sets pass without holding every
# layer's activations for all of them at once.
BATCH_SIZE = 4096


@torch.inference_mode()
def _in_batches(step: Callable[[torch.Tensor], torch.Tensor], rows: torch.Tensor, batch_size: int) -> torch.Tensor:
    if not len(rows):
        return step(rows)  # no batches to concatenate: the empty result, of the right width
    return torch.cat([step(rows[i : i + batch_size]) for i in range(0, len(rows), batch_size)])


def _stack(sizes: list[int], config: AutoencoderConfig) -> list[nn.Module]:
    """Linear layers through `sizes`, each followed by [BatchNorm] and the activation."""
    layers: list[nn.Module] = []
    for n_in, n_out in itertools.pairwise(sizes):
        layers.append(nn.Linear(n_in, n_out))
        if config.batch_norm:
            layers.append(nn.BatchNorm1d(n_out))
        layers.append(ACTIVATIONS[config.activation]())
    return layers


class Autoencoder(nn.Module):
    """input -> hidden layers -> linear code of size p -> mirrored hidden layers -> Sigmoid."""

    def __init__(self, config: AutoencoderConfig) -> None:
        super().__init__()
        self.config = config
        hidden = list(config.hidden_sizes)
        self.encoder = nn.Sequential(
            *_stack([config.input_size, *hidden], config),
            nn.Linear(hidden[-1], config.latent_size),
        )
        mirrored = hidden[::-1]
        self.decoder = nn.Sequential(
            *_stack([config.latent_size, *mirrored], config),
            nn.Linear(mirrored[-1], config.input_size),
            nn.Sigmoid(),  # pixels live in [0, 1]
        )

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(images)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.decoder(latents)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(images))

    def encode_all(self, images: torch.Tensor, batch_size: int = BATCH_SIZE) -> torch.Tensor:
        """Codes of a whole data set, a batch at a time, without autograd; the caller sets eval()."""
        return _in_batches(self.encode, images, batch_size)

    def decode_all(self, latents: torch.Tensor, batch_size: int = BATCH_SIZE) -> torch.Tensor:
        """Images of any number of codes, a batch at a time, without autograd; the caller sets eval()."""
        return _in_batches(self.decode, latents, batch_size)

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())
