"""What the report reads: the latest checkpoint of each model, their images, reference-recipe runs."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from models import CONFIGS, Checkpoint, CheckpointError, CheckpointStore
from models.checkpoint import read_history, read_metadata
from training.data import ImageData

log = logging.getLogger(__name__)


class ReportError(RuntimeError):
    """Nothing to report on, or inputs the report cannot be made from; the message says which."""


def ordered_names(names: Sequence[str]) -> list[str]:
    """The registry's order (the reference report's), then any other names alphabetically."""
    return [n for n in CONFIGS if n in names] + sorted(n for n in names if n not in CONFIGS)


def latest_checkpoints(store: CheckpointStore, dataset: str) -> list[Checkpoint]:
    checkpoints = []
    for name in ordered_names(store.names()):
        try:
            checkpoint = store.load_latest(name)
        except CheckpointError as e:
            log.warning("leaving %s out of the report: %s", name, e)
            continue
        if checkpoint.metadata["dataset"]["name"] != dataset:
            log.info("leaving %s out of the report: trained on %s", name, checkpoint.metadata["dataset"]["name"])
            continue
        checkpoints.append(checkpoint)
    return checkpoints


def data_for(checkpoints: Sequence[Checkpoint], data: ImageData) -> ImageData:
    """The images the checkpoints were trained and tested on: the first N of each split."""
    datasets = [c.metadata["dataset"] for c in checkpoints]
    for checkpoint, recorded in zip(checkpoints, datasets, strict=True):
        if recorded.get("sha256") != data.sha256:
            log.warning("%s was trained on other %s files than the ones loaded", checkpoint.name, data.name)
    # Normally every checkpoint used the whole set; where they differ, the largest covers them all.
    return data.subset(max(d["train_images"] for d in datasets), max(d["test_images"] for d in datasets))


@dataclass(frozen=True)
class Run:
    """A finished training run: what the comparison needs, without the weights."""

    metadata: dict[str, Any]
    history: list[dict[str, float]]

    @property
    def test_mse(self) -> float:
        return float(self.metadata["metrics"]["test_mse"])


def reference_runs(store: CheckpointStore, names: Sequence[str]) -> dict[str, Run]:
    """The latest valid reference-recipe version of each of `names` found in `store`."""
    runs = {}
    for name in names:
        for version in reversed(store.versions(name) if name in store.names() else []):
            folder = store.path(name, version)
            try:
                metadata = read_metadata(folder)
            except CheckpointError:
                continue
            if metadata.get("recipe", {}).get("name") == "reference":
                runs[name] = Run(metadata, read_history(folder))
                break
    return runs
