from pathlib import Path

import pytest
import torch

from training.data import DEBIAN_FASHION_MNIST, DataNotFoundError, ImageData, load_images


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


@pytest.mark.skipif(
    not DEBIAN_FASHION_MNIST.is_dir(), reason="needs Debian's dataset-fashion-mnist (.ci/run installs it)"
)
def test_fashion_mnist_from_debian_files_without_network(tmp_path: Path, mnist: ImageData) -> None:
    fashion = load_images("fashion-mnist", tmp_path)
    assert fashion.train_images.shape == (60_000, 784) and fashion.test_images.shape == (10_000, 784)
    assert fashion.sha256 != mnist.sha256
    assert torch.bincount(fashion.train_labels).tolist() == [6000] * 10  # balanced classes
