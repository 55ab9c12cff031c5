"""A store fails one version at a time: every malformed version is refused with its reason, the rest load.

Each fault is made in version 2 of a store whose version 1 is sound (real files through the real
writer); loading version 2 must raise a CheckpointError naming the problem, and version 1 must
still load, untouched.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from small_checkpoints import rewrite_checksum, write_small

from models import CheckpointError, CheckpointStore
from models.checkpoint import HISTORY, LATENTS, METADATA, WEIGHTS

NAME = "mlp2-p8"


@pytest.fixture
def store(tmp_path: Path) -> CheckpointStore:
    store = CheckpointStore(tmp_path / "checkpoints")
    for _ in range(2):
        store.publish(NAME, write_small)
    return store


def edit_metadata(change: Callable[[dict[str, Any]], None]) -> Callable[[Path, Path], None]:
    def fault(version: Path, _outside: Path) -> None:
        metadata = json.loads((version / METADATA).read_text())
        change(metadata)
        (version / METADATA).write_text(json.dumps(metadata))

    return fault


def file_outside(version: Path, outside: Path) -> None:
    """The weights swapped for a symlink to an identical file outside the store (checksum intact)."""
    outside.mkdir()
    shutil.copy(version / WEIGHTS, outside / WEIGHTS)
    (version / WEIGHTS).unlink()
    (version / WEIGHTS).symlink_to(outside / WEIGHTS)


def folder_outside(version: Path, outside: Path) -> None:
    """The whole version folder replaced by a symlink to a sound copy outside the store."""
    shutil.copytree(version, outside)
    shutil.rmtree(version)
    version.symlink_to(outside, target_is_directory=True)


FAULTS: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    "files names a missing file": (edit_metadata(lambda m: m["files"].update({"extra.bin": "0" * 64})), "'files'"),
    "files is a list": (edit_metadata(lambda m: m.update(files=list(m["files"]))), "'files' must be a JSON object"),
    "files leaves the folder": (
        edit_metadata(lambda m: m["files"].update({"../../../../etc/hostname": "0" * 64})),
        "'files'",
    ),
    "files lacks the weights": (edit_metadata(lambda m: m["files"].pop(WEIGHTS)), "'files'"),
    "dataset is a string": (edit_metadata(lambda m: m.update(dataset="mnist")), "'dataset' must be a JSON object"),
    "dataset has no name": (edit_metadata(lambda m: m.update(dataset={"rows": 3})), "'dataset' needs a 'name'"),
    "metrics hold text": (edit_metadata(lambda m: m.update(metrics={"test_mse": "low"})), "'metrics'"),
    "recipe is a number": (edit_metadata(lambda m: m.update(recipe=3)), "'recipe' must be a JSON object"),
    "name is not a string": (edit_metadata(lambda m: m.update(name=["mlp2-p8"])), "'name' must be a JSON string"),
    "another model's name": (edit_metadata(lambda m: m.update(name="mlp4-p2")), "names model 'mlp4-p2'"),
    "unknown format": (edit_metadata(lambda m: m.update(format=2)), "format 2, expected 1"),
    "format true": (edit_metadata(lambda m: m.update(format=True)), "format True, expected 1"),
    "architecture is a list": (edit_metadata(lambda m: m.update(architecture=[1])), "'architecture' must be"),
    "architecture is nonsense": (edit_metadata(lambda m: m.update(architecture={"x": 1})), "invalid architecture"),
    "metadata is a list": (lambda v, _o: (v / METADATA).write_text("[1, 2]"), "expected a JSON object"),
    "metadata is not UTF-8": (lambda v, _o: (v / METADATA).write_bytes(b"\xff\xfe{"), "not valid JSON"),
    "history is garbage": (lambda v, o: rewrite(v, HISTORY, b"epoch,train_mse\n1,abc\n"), "not a valid history"),
    "latents are garbage": (lambda v, o: rewrite(v, LATENTS, b"\x00" * 16), "unreadable safetensors"),
    "a file symlinked out of the store": (file_outside, "a symlink leads out of 'checkpoints'"),
    "the folder symlinked out of the store": (folder_outside, "a symlink leads out of 'checkpoints'"),
}


def rewrite(version: Path, name: str, content: bytes) -> None:
    """Replace a file and fix its checksum, so that the content itself is what is wrong."""
    (version / name).write_bytes(content)
    rewrite_checksum(version, name)


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_malformed_version_is_refused_with_its_reason_and_the_others_load(
    store: CheckpointStore, tmp_path: Path, fault: str
) -> None:
    make, reason = FAULTS[fault]
    make(store.path(NAME, 2), tmp_path / "outside")
    with pytest.raises(CheckpointError) as refused:
        store.load(NAME, 2)
    assert reason in str(refused.value), str(refused.value)
    assert store.load(NAME, 1).version == 1
    assert store.load_latest(NAME).version == 1


@pytest.mark.parametrize("entry", ["²", "01", "1.5", "v3", "0", "-1"])
def test_folders_that_are_not_version_numbers_are_reported_not_loaded(store: CheckpointStore, entry: str) -> None:
    shutil.copytree(store.path(NAME, 1), store.root / NAME / entry)
    assert store.versions(NAME) == [1, 2]
    assert store.problems() == {f"{NAME}/{entry}": "not a version folder (a number from 1, ASCII digits)"}


def test_stray_files_and_bad_model_names_are_reported(store: CheckpointStore) -> None:
    (store.root / "README.txt").write_text("notes")
    (store.root / "My Model").mkdir()
    (store.root / NAME / "notes.txt").write_text("notes")
    (store.root / ".train-state").mkdir()  # hidden: the trainer's, not a problem
    assert set(store.problems()) == {"README.txt", "My Model", f"{NAME}/notes.txt"}
    assert store.names() == [NAME]


def test_a_store_that_does_not_exist_has_no_models_and_no_problems(tmp_path: Path) -> None:
    missing = CheckpointStore(tmp_path / "nowhere")
    assert missing.names() == [] and missing.problems() == {}
