"""MNIST and Fashion-MNIST through torchvision, held in memory as flat float tensors."""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch.utils.data import Dataset, Subset
from torchvision.datasets import MNIST, FashionMNIST
from torchvision.transforms import ToTensor

DATASETS: dict[str, type[MNIST]] = {"mnist": MNIST, "fashion-mnist": FashionMNIST}
DATA_DIR_ENV = "AE_DATA_DIR"
# Relative to the working directory: the repository's own folder (git-ignored), then one shared beside the checkout.
LOCAL_DATA_DIRS = (Path("data"), Path("../shared/data"))
DATA_DIR_RULE = (
    f"${DATA_DIR_ENV} if set; else the first of ./data and ../shared/data that holds the data set's files; "
    "else ./data, where they are downloaded"
)
# Debian's dataset-fashion-mnist package installs the original .gz files here.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


class DataNotFoundError(FileNotFoundError):
    pass


@dataclass(frozen=True)
class ImageData:
    name: str
    train_images: torch.Tensor  # (N, 784) float32 in [0, 1]
    train_labels: torch.Tensor  # (N,) int64
    test_images: torch.Tensor
    test_labels: torch.Tensor
    train_set: Dataset  # the torchvision data set itself, for the report's DataLoader recipe
    sha256: str  # of the raw pixels and labels, recorded in every checkpoint

    def subset(self, train: int | None = None, test: int | None = None) -> ImageData:
        """The first `train` and `test` images, for smoke runs and tests."""
        n_train = len(self.train_labels) if train is None else min(train, len(self.train_labels))
        n_test = len(self.test_labels) if test is None else min(test, len(self.test_labels))
        return replace(
            self,
            train_images=self.train_images[:n_train],
            train_labels=self.train_labels[:n_train],
            test_images=self.test_images[:n_test],
            test_labels=self.test_labels[:n_test],
            train_set=Subset(self.train_set, range(n_train)),
        )

    def to(self, device: torch.device | str) -> ImageData:
        """Images moved to `device`, where the training loop slices its batches."""
        return replace(self, train_images=self.train_images.to(device), test_images=self.test_images.to(device))


def _dataset(name: str) -> type[MNIST]:
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; valid: {', '.join(DATASETS)}")
    return DATASETS[name]


def raw_files(name: str, root: Path) -> list[Path]:
    """The uncompressed files torchvision reads for data set `name` under `root`."""
    dataset = _dataset(name)
    return [root / dataset.__name__ / "raw" / archive.removesuffix(".gz") for archive, _md5 in dataset.resources]


def default_data_dir(name: str = "mnist") -> Path:
    """Where the data set is looked for when no --data-dir is given: see DATA_DIR_RULE."""
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV])
    holding = (root for root in LOCAL_DATA_DIRS if all(path.is_file() for path in raw_files(name, root)))
    return next(holding, LOCAL_DATA_DIRS[0])


def _extract_debian_files(dataset: type[MNIST], root: Path) -> bool:
    """Unpack Debian's Fashion-MNIST archives where torchvision looks; True if it did.

    Debian recompressed the .gz files, so torchvision's MD5 check of the archives would
    reject them; the unpacked IDX files are the originals.
    """
    archives = [DEBIAN_FASHION_MNIST / archive for archive, _md5 in dataset.resources]
    if dataset is not FashionMNIST or not all(a.is_file() for a in archives):
        return False
    raw = root / dataset.__name__ / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for archive in archives:
        with gzip.open(archive) as packed, open(raw / archive.stem, "wb") as unpacked:
            shutil.copyfileobj(packed, unpacked)
    return True


def open_split(name: str, root: Path, train: bool, download: bool = True) -> MNIST:
    """One split as a torchvision data set of (1x28x28 tensor, label) pairs."""
    dataset = _dataset(name)
    try:
        return dataset(str(root), train=train, download=False, transform=ToTensor())
    except RuntimeError:
        pass  # files missing: try the local Debian copy, then the network
    files = raw_files(name, Path(root))
    expected, folder = ", ".join(path.name for path in files), files[0].parent
    if not download:
        raise DataNotFoundError(f"{name} not found: {folder} must hold {expected} (downloading is off)")
    try:
        local = _extract_debian_files(dataset, Path(root))
        return dataset(str(root), train=train, download=not local, transform=ToTensor())
    except (RuntimeError, OSError) as e:
        reason = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise DataNotFoundError(
            f"{name} not found: {folder} must hold {expected}, and downloading failed ({reason}). "
            f"Point --data-dir or {DATA_DIR_ENV} at the folder that contains {dataset.__name__}/raw/."
        ) from None


def _flat(split: MNIST) -> torch.Tensor:
    return split.data.reshape(len(split.data), -1).float().div_(255.0)


def load_images(name: str, root: Path, download: bool = True) -> ImageData:
    train, test = open_split(name, root, True, download), open_split(name, root, False, download)
    digest = hashlib.sha256()
    for tensor in (train.data, train.targets, test.data, test.targets):
        digest.update(tensor.numpy().tobytes())
    return ImageData(
        name=name,
        train_images=_flat(train),
        train_labels=train.targets.long(),
        test_images=_flat(test),
        test_labels=test.targets.long(),
        train_set=train,
        sha256=digest.hexdigest(),
    )
