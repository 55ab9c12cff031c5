"""Training recipes: the reference report's, and a faster one that reaches a lower loss."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any


@dataclass(frozen=True)
class Recipe:
    name: str
    epochs: int
    batch_size: int
    lr: float  # Adam's learning rate, at the start of the schedule
    schedule: str  # "constant", or "cosine": decays to zero over the run, per step
    # "dataloader": the report's torchvision DataLoader, one PIL image at a time;
    # "tensor": the whole set as one tensor on the device, batches sliced from a permutation
    loader: str

    def with_epochs(self, epochs: int | None) -> Recipe:
        return self if epochs is None else replace(self, epochs=epochs)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


RECIPES: dict[str, Recipe] = {
    "reference": Recipe("reference", epochs=100, batch_size=64, lr=5e-3, schedule="constant", loader="dataloader"),
    "fast": Recipe("fast", epochs=150, batch_size=256, lr=3e-3, schedule="cosine", loader="tensor"),
}


def get_recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(f"unknown recipe {name!r}; valid: {', '.join(RECIPES)}") from None
