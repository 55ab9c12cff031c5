"""Aliases in the store: publishing is not promoting; promote, roll back, history, bad input, races."""

from __future__ import annotations

import itertools
import json
import threading
from pathlib import Path

import pytest
from small_checkpoints import write_small

from models import CheckpointError, CheckpointStore
from models.aliases import ALIASES_FILE, AliasError
from models.checkpoint import METADATA, WEIGHTS
from models.cli import main as models_main
from training.cli import promote_if_better

NAME = "mlp2-p8"


@pytest.fixture
def store(tmp_path: Path) -> CheckpointStore:
    return CheckpointStore(tmp_path / "checkpoints")


def publish(store: CheckpointStore, count: int, promote: bool = False) -> list[int]:
    return [store.publish(NAME, write_small, promote=promote) for _ in range(count)]


def test_a_store_without_aliases_means_latest_by_stable(store: CheckpointStore) -> None:
    assert store.stable(NAME) is None
    publish(store, 1)
    assert not (store.root / NAME / ALIASES_FILE).exists()  # the first version needs no pin
    assert store.stable(NAME) == 1


def test_publishing_does_not_move_stable_unless_asked(store: CheckpointStore) -> None:
    publish(store, 1)
    publish(store, 2)
    assert store.versions(NAME) == [1, 2, 3] and store.stable(NAME) == 1
    assert [(c.version, c.previous) for c in store.aliases(NAME).history] == [(1, None)]  # pinned, recorded
    assert publish(store, 1, promote=True) == [4]
    assert store.stable(NAME) == 4
    assert store.aliases(NAME).history[-1].by == "ae-train --promote"


def test_promote_and_rollback_are_recorded_and_survive_a_new_store_object(store: CheckpointStore) -> None:
    publish(store, 3)
    store.promote(NAME, 2, "test")
    store.promote(NAME, 3, "test")
    back = store.rollback(NAME, "test")
    assert (back.version, back.previous, back.by) == (2, 3, "test (rollback)")
    again = CheckpointStore(store.root)
    assert again.stable(NAME) == 2
    assert [(c.version, c.previous) for c in again.aliases(NAME).history] == [(1, None), (2, 1), (3, 2), (2, 3)]
    assert all(c.at.endswith("+00:00") for c in again.aliases(NAME).history)


def test_what_cannot_be_promoted_or_rolled_back_is_refused_and_changes_nothing(store: CheckpointStore) -> None:
    publish(store, 2)
    with pytest.raises(AliasError, match=r"mlp2-p8 has no version 9 \(its versions: 1, 2\)"):
        store.promote(NAME, 9, "test")
    (store.path(NAME, 2) / WEIGHTS).unlink()
    with pytest.raises(CheckpointError, match="required file is missing"):
        store.promote(NAME, 2, "test")
    with pytest.raises(AliasError, match="no model 'mlp4-p2'"):
        store.promote("mlp4-p2", 1, "test")
    with pytest.raises(AliasError, match="no earlier stable version"):
        store.rollback(NAME, "test")
    assert store.stable(NAME) == 1 and len(store.aliases(NAME).history) == 1  # only the pin of publishing


@pytest.mark.parametrize(
    "content",
    ["{not json", "[1, 2]", '{"stable": "two"}', '{"stable": 0}', '{"stable": true}', '{"stable": 1, "history": 5}',
     '{"stable": 1, "history": [{"alias": "stable"}]}', '{"stable": 1, "history": [{"alias": "stable", "version": '
     '"x", "previous": null, "at": "", "by": ""}]}'],
)  # fmt: skip
def test_an_alias_file_edited_into_nonsense_is_a_clear_error(store: CheckpointStore, content: str) -> None:
    publish(store, 2)
    (store.root / NAME / ALIASES_FILE).write_text(content)
    with pytest.raises(AliasError, match=rf"{ALIASES_FILE}"):
        store.stable(NAME)


def test_racing_promotions_lose_none_of_their_changes(store: CheckpointStore) -> None:
    publish(store, 4)
    barrier = threading.Barrier(8)

    def promote(version: int) -> None:
        barrier.wait()
        store.promote(NAME, version, f"racer {version}")

    racers = [threading.Thread(target=promote, args=(1 + i % 4,)) for i in range(8)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()
    history = store.aliases(NAME).history
    assert len(history) == 9  # the pin before version 2, then every racer's change
    assert all(later.previous == earlier.version for earlier, later in itertools.pairwise(history))
    assert store.stable(NAME) == history[-1].version
    assert not [p.name for p in (store.root / NAME).iterdir() if p.name.startswith(".aliases-")]  # no leftovers
    assert store.problems() == {}  # the alias file and its lock are the store's own


def test_promote_if_better_compares_test_mse_with_the_stable_version(store: CheckpointStore) -> None:
    def with_mse(version: int, mse: float) -> None:
        path = store.path(NAME, version) / METADATA
        metadata = json.loads(path.read_text())
        metadata["metrics"]["test_mse"] = mse
        path.write_text(json.dumps(metadata))

    publish(store, 3)
    for version, mse in [(1, 0.05), (2, 0.06), (3, 0.05)]:
        with_mse(version, mse)
    assert not promote_if_better(store, NAME, 2) and store.stable(NAME) == 1  # worse: kept
    assert promote_if_better(store, NAME, 3) and store.stable(NAME) == 3  # not worse: promoted


def test_the_command_line_lists_promotes_and_rolls_back(
    store: CheckpointStore, capsys: pytest.CaptureFixture[str]
) -> None:
    publish(store, 3)
    (store.path(NAME, 3) / WEIGHTS).unlink()
    root = ["--store", str(store.root)]
    assert models_main([*root, "promote", NAME, "2"]) == 0
    assert "mlp2-p8: stable is now version 2 (was 1)" in capsys.readouterr().out
    assert models_main([*root, "list"]) == 0
    rows = {line.split()[1]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert "stable" in rows["2"] and "0.09000" in rows["2"]
    assert "latest" in rows["3"] and "broken: required file is missing" in rows["3"]
    assert models_main([*root, "rollback", NAME]) == 0
    assert "stable is now version 1 (was 2)" in capsys.readouterr().out
    assert models_main([*root, "history", NAME]) == 0
    assert "stable -> 1 (was 2)  by ae-models rollback" in capsys.readouterr().out
    with pytest.raises(SystemExit) as refused:
        models_main([*root, "promote", NAME, "3"])
    assert refused.value.code == 1 and "required file is missing" in capsys.readouterr().err
