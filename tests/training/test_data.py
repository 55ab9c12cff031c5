import logging
from pathlib import Path

import pytest
import torch

from training.cli import main
from training.data import (
    DATA_DIR_ENV,
    DEBIAN_FASHION_MNIST,
    DataNotFoundError,
    ImageData,
    default_data_dir,
    load_images,
    raw_files,
)


def test_mnist_loads_as_flat_pixels_in_unit_range(mnist: ImageData) -> None:
    assert mnist.train_images.shape == (60_000, 784)
    assert mnist.test_images.shape == (10_000, 784)
    assert mnist.train_images.dtype == torch.float32
    assert mnist.train_images.min() >= 0.0 and mnist.train_images.max() <= 1.0
    assert abs(mnist.train_images.mean().item() - 0.1307) < 1e-3  # the well-known MNIST pixel mean
    assert torch.bincount(mnist.train_labels).tolist()[:2] == [5923, 6742]
    assert len(mnist.sha256) == 64


def test_checksum_is_stable(data_root: Path, mnist: ImageData) -> None:
    assert load_images("mnist", data_root, download=False).sha256 == mnist.sha256


def test_subset_keeps_the_first_images(mnist: ImageData) -> None:
    small = mnist.subset(train=100, test=10)
    assert small.train_images.shape == (100, 784) and len(small.train_set) == 100
    assert torch.equal(small.test_images, mnist.test_images[:10])
    image, label = small.train_set[3]
    assert torch.allclose(image.view(-1), mnist.train_images[3]) and label == mnist.train_labels[3]


def test_missing_data_folder_names_folder_and_files(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError) as info:
        load_images("mnist", tmp_path / "nowhere", download=False)
    message = str(info.value)
    assert str(tmp_path / "nowhere" / "MNIST" / "raw") in message
    assert "train-images-idx3-ubyte" in message and "t10k-labels-idx1-ubyte" in message


def test_unknown_dataset_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="valid: mnist, fashion-mnist"):
        load_images("cifar", tmp_path)


def test_fashion_mnist_from_debian_files_without_network(tmp_path: Path, mnist: ImageData) -> None:
    # Never skipped: `make test` installs Debian's dataset-fashion-mnist (scripts/system-deps.sh).
    assert DEBIAN_FASHION_MNIST.is_dir(), "needs Debian's dataset-fashion-mnist: run `make test`"
    fashion = load_images("fashion-mnist", tmp_path)
    assert fashion.train_images.shape == (60_000, 784) and fashion.test_images.shape == (10_000, 784)
    assert fashion.sha256 != mnist.sha256
    assert torch.bincount(fashion.train_labels).tolist() == [6000] * 10  # balanced classes


# ---------------------------------------------------------------------------- where the data is looked for


def _checkout(tmp_path: Path, data_root: Path, complete: list[str], incomplete: list[str] | None = None) -> Path:
    """tmp/repo (the working directory) beside tmp/shared; the folders in `complete` get the real MNIST
    raw files (as symlinks), those in `incomplete` all but the last."""
    for folder in [*complete, *(incomplete or [])]:
        raw = tmp_path / folder / "MNIST" / "raw"
        raw.mkdir(parents=True)
        files = raw_files("mnist", data_root)
        for source in files if folder in complete else files[:-1]:
            (raw / source.name).symlink_to(source)
    (tmp_path / "repo").mkdir(exist_ok=True)
    return tmp_path / "repo"


@pytest.mark.parametrize(
    ("complete", "incomplete", "expected"),
    [
        ([], [], "data"),  # nowhere yet: ./data, where torchvision downloads
        (["repo/data"], [], "data"),
        (["shared/data"], [], "../shared/data"),
        (["repo/data", "shared/data"], [], "data"),  # the checkout's own first
        (["shared/data"], ["repo/data"], "../shared/data"),  # a half-filled ./data does not count
    ],
)
def test_default_data_dir_is_the_first_folder_holding_the_files(
    complete: list[str],
    incomplete: list[str],
    expected: str,
    data_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(_checkout(tmp_path, data_root, complete, incomplete))
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    assert default_data_dir() == Path(expected)


def test_default_data_dir_takes_the_environment_first(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(_checkout(tmp_path, data_root, ["repo/data", "shared/data"]))
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "elsewhere"))
    assert default_data_dir() == tmp_path / "elsewhere"  # even where nothing is there yet
    monkeypatch.setenv(DATA_DIR_ENV, "")
    assert default_data_dir() == Path("data")  # set but empty: as if unset


def test_default_data_dir_looks_for_the_files_of_the_data_set_asked_for(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(_checkout(tmp_path, data_root, ["shared/data"]))
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    assert default_data_dir("mnist") == Path("../shared/data")
    assert default_data_dir("fashion-mnist") == Path("data")


def test_bare_cli_finds_mnist_beside_the_checkout(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """No --data-dir, no AE_DATA_DIR, nothing in ./data: the CLI reads ../shared/data, downloading nothing."""
    monkeypatch.chdir(_checkout(tmp_path, data_root, ["shared/data"]))
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    caplog.set_level(logging.INFO, logger="training")
    assert main(["--config", "mlp1-p2", "--dry-run", "--no-download", "--store", "store", "--device", "cpu"]) == 0
    assert "dry run done" in caplog.text
    assert not Path("data").exists()
