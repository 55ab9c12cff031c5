import json
import threading
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from small_checkpoints import rewrite_checksum, write_small

from models import CheckpointError, CheckpointStore, InvalidNameError, build_model, load_checkpoint
from models.checkpoint import METADATA, WEIGHTS, read_history


@pytest.fixture
def store(tmp_path: Path) -> CheckpointStore:
    return CheckpointStore(tmp_path / "checkpoints")


@pytest.fixture
def version(store: CheckpointStore) -> Path:
    number = store.publish("mlp2-p8", write_small)
    return store.path("mlp2-p8", number)


def test_save_then_load_gives_identical_outputs(tmp_path: Path) -> None:
    write_small(tmp_path)
    torch.manual_seed(1)
    original = build_model("mlp2-p8").eval()
    loaded = load_checkpoint(tmp_path)
    images = torch.rand(5, 784)
    with torch.inference_mode():
        assert torch.equal(original(images), loaded.model(images))
    assert loaded.metadata["architecture"]["latent_size"] == 8
    assert loaded.metadata["parameters"] == original.parameter_count()
    assert read_history(tmp_path) == [{"epoch": 1.0, "train_mse": 0.1, "test_mse": 0.09, "seconds": 1.5}]


def test_projection_maps_codes_to_two_dimensions(tmp_path: Path) -> None:
    write_small(tmp_path)
    latents = load_checkpoint(tmp_path).latents
    points = latents.to_map(latents.codes)
    assert points.shape == (64, 2)
    assert torch.allclose(points, (latents.codes - latents.codes.mean(0))[:, :2], atol=1e-6)


def test_corrupted_weights_fail_their_checksum(version: Path) -> None:
    data = bytearray((version / WEIGHTS).read_bytes())
    data[-1] ^= 0xFF
    (version / WEIGHTS).write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: checksum does not match"):
        load_checkpoint(version)


def test_garbage_weights_are_reported_unreadable(version: Path) -> None:
    (version / WEIGHTS).write_bytes(b"not a safetensors file at all")
    rewrite_checksum(version, WEIGHTS)
    with pytest.raises(CheckpointError, match=r"model\.safetensors: unreadable safetensors"):
        load_checkpoint(version)


@pytest.mark.parametrize("missing", ["model.safetensors", "model.json", "history.csv", "latents.safetensors"])
def test_missing_file_is_named(version: Path, missing: str) -> None:
    (version / missing).unlink()
    with pytest.raises(CheckpointError, match=rf"{missing}: required file is missing"):
        load_checkpoint(version)


def test_weights_of_the_wrong_shape_are_rejected(version: Path) -> None:
    state = load_file(version / WEIGHTS)
    state["encoder.0.weight"] = torch.zeros(255, 784)
    save_file(state, version / WEIGHTS)
    rewrite_checksum(version, WEIGHTS)
    with pytest.raises(CheckpointError, match=r"weights do not fit the architecture.*encoder\.0\.weight"):
        load_checkpoint(version)


def test_latents_of_the_wrong_size_are_rejected(version: Path) -> None:
    wrong = {"codes": torch.zeros(10, 3), "labels": torch.zeros(10, dtype=torch.int64)}
    save_file(wrong, version / "latents.safetensors")
    rewrite_checksum(version, "latents.safetensors")
    with pytest.raises(CheckpointError, match=r"latents\.safetensors: codes \(10, 3\).*p = 8"):
        load_checkpoint(version)


def test_invalid_metadata_is_rejected(version: Path) -> None:
    (version / METADATA).write_text("{not json")
    with pytest.raises(CheckpointError, match=r"model\.json: not valid JSON"):
        load_checkpoint(version)
    (version / METADATA).write_text(json.dumps({"format": 1}))
    with pytest.raises(CheckpointError, match=r"missing keys: name, architecture"):
        load_checkpoint(version)


def test_versions_count_up_and_are_readable_by_others(store: CheckpointStore) -> None:
    assert [store.publish("mlp2-p2", lambda f: write_small(f, "mlp2-p2")) for _ in range(3)] == [1, 2, 3]
    assert store.versions("mlp2-p2") == [1, 2, 3]
    assert store.names() == ["mlp2-p2"]
    assert store.load_latest("mlp2-p2").version == 3
    for file in store.path("mlp2-p2", 3).iterdir():
        assert file.stat().st_mode & 0o777 == 0o644


def test_crash_during_publish_leaves_no_visible_version(store: CheckpointStore) -> None:
    def crash(folder: Path) -> None:
        write_small(folder)
        raise KeyboardInterrupt  # as if killed after writing half of the files

    with pytest.raises(KeyboardInterrupt):
        store.publish("mlp2-p8", crash)
    assert store.versions("mlp2-p8") == []
    assert list((store.root / "mlp2-p8").iterdir()) == []  # the staging folder is gone too


def test_staging_folder_of_a_killed_run_is_invisible(store: CheckpointStore) -> None:
    (store.root / "mlp2-p8" / ".tmp-killed").mkdir(parents=True)
    write_small(store.root / "mlp2-p8" / ".tmp-killed")
    assert store.versions("mlp2-p8") == []
    assert store.publish("mlp2-p8", write_small) == 1


def test_concurrent_publishers_get_different_versions(store: CheckpointStore) -> None:
    barrier = threading.Barrier(4)
    results: list[int] = []

    def write(folder: Path) -> None:
        write_small(folder)
        barrier.wait()  # everyone computes "next version" at the same moment

    threads = [threading.Thread(target=lambda: results.append(store.publish("mlp2-p8", write))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [1, 2, 3, 4]
    for number in results:
        load_checkpoint(store.path("mlp2-p8", number))


def test_latest_skips_a_broken_version(store: CheckpointStore, caplog: pytest.LogCaptureFixture) -> None:
    store.publish("mlp2-p8", write_small)
    store.publish("mlp2-p8", write_small)
    (store.path("mlp2-p8", 2) / WEIGHTS).unlink()
    assert store.load_latest("mlp2-p8").version == 1
    assert "skipping mlp2-p8 version 2" in caplog.text and "required file is missing" in caplog.text


@pytest.mark.parametrize("name", ["../etc", "a/b", "..", ".hidden", "UPPER", "", "x" * 65])
def test_names_cannot_leave_the_store(store: CheckpointStore, name: str) -> None:
    with pytest.raises(InvalidNameError):
        store.versions(name)
    with pytest.raises(InvalidNameError):
        store.publish(name, write_small)
