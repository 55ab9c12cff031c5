"""One checkpoint version on disk: writing its files, validating them, loading them.

A version folder holds model.safetensors (weights only: loading never runs code),
model.json (everything needed to rebuild and judge the model), history.csv (one row per
epoch) and latents.safetensors (the test set's codes and labels, plus for p > 2 the
PCA projection that draws them in 2-D).
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from models.architecture import Autoencoder, AutoencoderConfig

FORMAT_VERSION = 1
WEIGHTS, METADATA, HISTORY, LATENTS = (
    "model.safetensors",
    "model.json",
    "history.csv",
    "latents.safetensors",
)
REQUIRED_FILES = (WEIGHTS, METADATA, HISTORY, LATENTS)
HISTORY_FIELDS = ("epoch", "train_mse", "test_mse", "seconds")
REQUIRED_KEYS = ("format", "name", "architecture", "dataset", "metrics", "files")
# The JSON type of each key readers rely on, where present (a bool is not an int here).
KEY_TYPES: dict[str, type] = {
    "format": int,
    "name": str,
    "config": str,
    "architecture": dict,
    "dataset": dict,
    "metrics": dict,
    "files": dict,
    "recipe": dict,
    "timings": dict,
    "versions": dict,
    "seed": int,
    "epochs": int,
    "parameters": int,
    "created": str,
}
CHECKSUMMED = (WEIGHTS, HISTORY, LATENTS)  # model.json's "files": exactly these, each with its sha256


class CheckpointError(Exception):
    """A checkpoint version that cannot be used; says which file and what is wrong."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class LatentSet:
    """Latent codes of the test set with their labels, and the map that shows them in 2-D."""

    codes: torch.Tensor  # (N, p) float32
    labels: torch.Tensor  # (N,) int64
    projection_mean: torch.Tensor | None = None  # (p,), only for p > 2
    projection_components: torch.Tensor | None = None  # (2, p), only for p > 2

    def to_map(self, codes: torch.Tensor) -> torch.Tensor:
        """Positions of `codes` on the 2-D map: the codes themselves for p = 2, else PCA."""
        if self.projection_mean is None or self.projection_components is None:
            return codes
        return (codes - self.projection_mean) @ self.projection_components.T

    def tensors(self) -> dict[str, torch.Tensor]:
        named = {
            "codes": self.codes,
            "labels": self.labels,
            "projection_mean": self.projection_mean,
            "projection_components": self.projection_components,
        }
        return {k: v.contiguous() for k, v in named.items() if v is not None}


@dataclass(frozen=True)
class Checkpoint:
    """One version, loaded whole: its model, metadata, per-epoch history and test-set latents."""

    path: Path
    metadata: dict[str, Any]
    model: Autoencoder
    history: list[dict[str, float]]
    latents: LatentSet

    @property
    def name(self) -> str:
        return str(self.metadata["name"])

    @property
    def version(self) -> int:
        return int(self.path.name)

    @property
    def config(self) -> AutoencoderConfig:
        return self.model.config


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_checkpoint(
    folder: Path,
    model: Autoencoder,
    metadata: dict[str, Any],
    history: list[dict[str, float]],
    latents: LatentSet,
) -> None:
    """Write every file of a version into `folder`; model.json, with the checksums, last."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, folder / WEIGHTS)
    save_file({k: v.cpu() for k, v in latents.tensors().items()}, folder / LATENTS)
    with open(folder / HISTORY, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=HISTORY_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(history)
    files = {name: sha256_file(folder / name) for name in CHECKSUMMED}
    full = {
        "format": FORMAT_VERSION,
        **metadata,
        "architecture": model.config.to_dict(),
        "parameters": model.parameter_count(),
        "files": files,
    }
    (folder / METADATA).write_text(json.dumps(full, indent=2) + "\n")


def read_metadata(folder: Path) -> dict[str, Any]:
    """model.json, checked for the keys and types every reader relies on, and every file's checksum."""
    for name in REQUIRED_FILES:
        if not (folder / name).is_file():
            raise CheckpointError(folder / name, "required file is missing")
    path = folder / METADATA
    try:
        metadata = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(path, f"not valid JSON ({e})") from None
    if not isinstance(metadata, dict):
        raise CheckpointError(path, "expected a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in metadata]
    if missing:
        raise CheckpointError(path, f"missing keys: {', '.join(missing)}")
    if _kind(metadata["format"]) is not int or metadata["format"] != FORMAT_VERSION:
        raise CheckpointError(path, f"format {metadata['format']!r}, expected {FORMAT_VERSION}")
    _check_types(path, metadata)
    for name, expected in metadata["files"].items():
        if sha256_file(folder / name) != expected:
            raise CheckpointError(folder / name, "checksum does not match model.json (corrupted?)")
    return metadata


def _kind(value: Any) -> type:
    return type(value) if not isinstance(value, bool) else bool


def _check_types(path: Path, metadata: dict[str, Any]) -> None:
    for key, expected in KEY_TYPES.items():
        if key in metadata and _kind(metadata[key]) is not expected:
            raise CheckpointError(path, f"{key!r} must be a JSON {_JSON_NAMES[expected]}")
    if _kind(metadata["dataset"].get("name")) is not str:
        raise CheckpointError(path, "'dataset' needs a 'name' string")
    if any(_kind(v) not in (int, float) for v in metadata["metrics"].values()):
        raise CheckpointError(path, "'metrics' must map names to numbers")
    files = metadata["files"]
    if sorted(files) != sorted(CHECKSUMMED) or not all(_kind(v) is str for v in files.values()):
        raise CheckpointError(path, f"'files' must give the sha256 of exactly {', '.join(CHECKSUMMED)}")


_JSON_NAMES = {int: "integer", str: "string", dict: "object"}


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(path, f"unreadable safetensors file ({e})") from None


def load_checkpoint(folder: Path, device: str | torch.device = "cpu", within: Path | None = None) -> Checkpoint:
    """Validate a version folder and load everything it holds; the model rebuilt from its stored config.

    The one way to load a version: the service, the report and the benchmarks all call it. Nothing
    is read from outside `within` (default: the folder itself), whatever symlinks there are.
    """
    folder = Path(folder)
    _check_confined(folder, Path(within) if within is not None else folder)
    metadata = read_metadata(folder)
    try:
        config = AutoencoderConfig.from_dict(metadata["architecture"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(folder / METADATA, f"invalid architecture ({e})") from None
    model = Autoencoder(config)
    try:
        model.load_state_dict(_load_tensors(folder / WEIGHTS))
    except RuntimeError as e:  # missing, unexpected or wrongly shaped tensors, one per line
        details = "; ".join(line.strip() for line in str(e).splitlines()[1:])
        raise CheckpointError(folder / WEIGHTS, f"weights do not fit the architecture: {details}") from None
    return Checkpoint(
        path=folder,
        metadata=metadata,
        model=model.to(device).eval(),
        history=read_history(folder),
        latents=_load_latents(folder, config.latent_size),
    )


def _check_confined(folder: Path, within: Path) -> None:
    """Refuse a version whose folder or files (through symlinks) lie outside `within`."""
    boundary = within.resolve()
    for path in (folder, *(folder / name for name in REQUIRED_FILES)):
        if path.exists() and not path.resolve().is_relative_to(boundary):
            raise CheckpointError(path, f"a symlink leads out of {within.name!r}; refused")


def _load_latents(folder: Path, latent_size: int) -> LatentSet:
    path = Path(folder) / LATENTS
    tensors = _load_tensors(path)
    codes, labels = tensors.get("codes"), tensors.get("labels")
    if codes is None or labels is None:
        raise CheckpointError(path, "needs tensors 'codes' and 'labels'")
    if codes.ndim != 2 or codes.shape[1] != latent_size or labels.shape != (codes.shape[0],):
        raise CheckpointError(
            path, f"codes {tuple(codes.shape)} and labels {tuple(labels.shape)} do not fit p = {latent_size}"
        )
    mean, components = tensors.get("projection_mean"), tensors.get("projection_components")
    if latent_size > 2 and (
        mean is None or components is None or mean.shape != (latent_size,) or components.shape != (2, latent_size)
    ):
        raise CheckpointError(path, f"p = {latent_size} > 2 needs a 2-D projection of shape (2, {latent_size})")
    return LatentSet(codes, labels, mean, components)


def read_history(folder: Path) -> list[dict[str, float]]:
    """history.csv as rows of floats; also read alone, for runs whose weights are not needed."""
    path = Path(folder) / HISTORY
    try:
        with open(path, newline="") as f:
            return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    except (ValueError, TypeError, csv.Error, UnicodeDecodeError) as e:
        raise CheckpointError(path, f"not a valid history ({e})") from None
