"""The models being served: every valid version in the store, warmed, each with its batcher."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from models import Checkpoint, CheckpointError, CheckpointStore, load_checkpoint
from models.store import check_name
from service.batcher import MicroBatcher, Outputs
from service.codecs import as_unit_floats
from service.errors import NotFound

log = logging.getLogger(__name__)
KINDS = ("encode", "decode", "decode_pixels", "reconstruct", "reconstruct_pixels", "reconstruct_mse")


def _pixels(images: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] -> uint8 0-255, rounded half to even; in place (the floats are not needed after)."""
    return images.mul_(255).round_().clamp_(0, 255).to(torch.uint8)


@dataclass
class ServedModel:
    checkpoint: Checkpoint
    device: torch.device
    map_points: np.ndarray = field(init=False)  # the test set on the 2-D map, (N, 2)
    map_labels: np.ndarray = field(init=False)  # their digits, (N,)
    batcher: MicroBatcher | None = None

    def __post_init__(self) -> None:
        latents = self.checkpoint.latents
        self.map_points = latents.to_map(latents.codes).numpy()
        self.map_labels = latents.labels.numpy()

    @property
    def name(self) -> str:
        return self.checkpoint.name

    @property
    def version(self) -> int:
        return self.checkpoint.version

    @property
    def latent_size(self) -> int:
        return self.checkpoint.config.latent_size

    def forward(self, kind: str, parts: list[np.ndarray]) -> Outputs:
        """One forward pass on the device over the parts' rows, in order; runs in the batcher's worker thread.

        `kind` (one of KINDS) says what the response needs, and only that is computed: "encode"
        (codes), "decode" (images from codes), "reconstruct" (images) or "reconstruct_mse" (images
        and their MSE, for the JSON response that reports it). The "_pixels" kinds give the images
        as uint8 0-255, what raw replies send: quantized here once per pass, not once per request
        on the event loop (and on CUDA before the copy to the host, a quarter of the bytes).
        """
        if kind not in KINDS:
            raise ValueError(f"unknown forward kind {kind!r}; expected one of {', '.join(KINDS)}")
        model = self.checkpoint.model
        inputs = [as_unit_floats(part) for part in parts]
        x = torch.from_numpy(inputs[0] if len(inputs) == 1 else np.concatenate(inputs)).to(self.device)
        with torch.inference_mode():
            if kind.startswith("decode"):
                images = model.decode(x)
            else:
                codes = model.encode(x)
                if kind == "encode":
                    return {"codes": codes.cpu().numpy()}
                images = model.decode(codes)
            out = {"images": _pixels(images) if kind.endswith("_pixels") else images}
            if kind == "reconstruct_mse":
                out["mse"] = (images - x).square().mean(dim=1)
            return {key: value.cpu().numpy() for key, value in out.items()}

    def to_map(self, codes: np.ndarray) -> np.ndarray:
        return self.checkpoint.latents.to_map(torch.from_numpy(codes)).numpy()

    def warm(self) -> None:
        images = np.zeros((2, self.checkpoint.config.input_size), np.float32)
        for kind, inputs in (
            ("encode", images),
            ("reconstruct", images),
            ("reconstruct_pixels", images),
            ("reconstruct_mse", images),
            ("decode", np.zeros((2, self.latent_size), np.float32)),
            ("decode_pixels", np.zeros((2, self.latent_size), np.float32)),
        ):
            self.forward(kind, [inputs])

    def summary(self) -> dict[str, Any]:
        meta = self.checkpoint.metadata
        return {
            "name": self.name,
            "version": self.version,
            "latent_size": self.latent_size,
            "parameters": meta.get("parameters"),
            "architecture": meta["architecture"],
            "dataset": meta["dataset"].get("name"),
            "recipe": meta.get("recipe", {}).get("name"),
            "epochs": meta.get("epochs"),
            "metrics": meta["metrics"],
            "train_seconds": meta.get("timings", {}).get("train_seconds"),
            "created": meta.get("created"),
        }


class Catalog:
    def __init__(self, store: CheckpointStore, device: torch.device) -> None:
        self.store = store
        self.device = device
        self.models: dict[str, dict[int, ServedModel]] = {}
        self.skipped: dict[str, str] = {}  # "name/version" -> why it is not served

    def load(self) -> None:
        """Load and warm every valid version; a broken one is skipped with a logged reason."""
        for name in self.store.names():
            for version in self.store.versions(name):
                path = self.store.path(name, version)
                try:
                    checkpoint = load_checkpoint(path, self.device)
                except CheckpointError as e:
                    self.skipped[f"{name}/{version}"] = str(e)
                    log.warning("not serving %s version %d: %s", name, version, e)
                    continue
                served = ServedModel(checkpoint, self.device)
                served.warm()
                self.models.setdefault(name, {})[version] = served
        log.info("serving %d versions of %d models on %s", len(self), len(self.models), self.device)

    def __len__(self) -> int:
        return sum(len(versions) for versions in self.models.values())

    def __iter__(self) -> Iterator[ServedModel]:
        for versions in self.models.values():
            yield from versions.values()

    def resolve(self, name: str, version: int | None) -> ServedModel:
        """The requested version, or the latest; NotFound lists what exists."""
        versions = self.models.get(name)
        if not versions:
            check_name(name)  # a malformed name is a 422 that says why, not a 404
            raise NotFound(f"unknown model {name!r}", available=sorted(self.models))
        if version is None:
            return versions[max(versions)]
        if version not in versions:
            raise NotFound(f"model {name!r} has no version {version}", available_versions=sorted(versions))
        return versions[version]
