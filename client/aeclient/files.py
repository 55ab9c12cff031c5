"""The command line's files: digits in (a folder of PNG/JPEG files, or an .npy array), codes (.npz), PNGs out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass(frozen=True)
class Source:
    """Images to send, each with a name: file paths (the service normalises them) or an array's rows."""

    images: Any  # a list of Paths, or an (N, 784) / (N, 28, 28) array
    names: list[str]
    input_bytes: int  # what they take as they are: the files' sizes, or N x 784 for an array
    kind: str  # "files" or "pixels"

    def __len__(self) -> int:
        return len(self.names)


def read_source(path: Path) -> Source:
    """A folder's PNG and JPEG files (sorted by name, not recursive), or an .npy array of digits."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"{path}: no {', '.join(IMAGE_SUFFIXES)} files")
        return Source(files, [p.name for p in files], sum(p.stat().st_size for p in files), "files")
    if path.suffix != ".npy":
        raise ValueError(f"{path}: expected a folder of PNG/JPEG files or an .npy array")
    array = np.load(path, allow_pickle=False)
    if array.ndim == 1 or array.shape == (28, 28):
        array = array.reshape(1, -1)
    width = len(str(max(len(array) - 1, 0)))
    return Source(array, [f"{i:0{width}d}" for i in range(len(array))], len(array) * 784, "pixels")


@dataclass(frozen=True)
class Codes:
    """Latent codes of named images, and the model version that made them (and alone can decode them)."""

    codes: np.ndarray  # (N, p), float32 or float16
    names: list[str]
    model: str
    version: int

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as out:  # np.savez_compressed would add .npz to another suffix
            np.savez_compressed(out, codes=self.codes, names=np.asarray(self.names, dtype=str),
                                model=np.asarray(self.model), version=np.asarray(self.version))  # fmt: skip

    @classmethod
    def load(cls, path: Path) -> Codes:
        with np.load(path, allow_pickle=False) as data:
            missing = {"codes", "names", "model", "version"} - set(data.files)
            if missing:
                raise ValueError(f"{path}: not a codes file of ae-client encode (no {', '.join(sorted(missing))})")
            return cls(data["codes"], [str(n) for n in data["names"]], str(data["model"]), int(data["version"]))


def png_names(names: list[str]) -> list[str]:
    """A PNG file name per image name: its stem + .png, or the whole name + .png where stems collide."""
    stems = [Path(name).stem + ".png" for name in names]
    if len(set(stems)) == len(stems):
        return stems
    return [name + ".png" for name in names]


def write_pngs(images: np.ndarray, names: list[str], folder: Path) -> None:
    """(N, 28, 28) uint8 digits -> folder/<name>.png, 8-bit greyscale."""
    folder.mkdir(parents=True, exist_ok=True)
    for image, name in zip(images, png_names(names), strict=True):
        Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(folder / name, format="PNG")
