"""Ctrl-C: one line that says how far the run got and how to go on, exit status 130, no traceback.

Here the interrupt is raised where the signal would raise it; test_training.py sends a real SIGINT.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import training.loop
from models import CheckpointStore
from training.cli import main

pytestmark = pytest.mark.slow  # live servers, browsers, benchmark or long training runs: make test-fast skips them

RESUME = "run the same command again to resume"
SMALL = ["--train-limit", "256", "--test-limit", "64", "--device", "cpu", "--no-download"]


@pytest.fixture
def ctrl_c_in_epoch(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """Makes Ctrl-C come during the n-th epoch that the command trains, where the signal would raise it."""

    def arrange(n: int) -> None:
        train_epoch, count = training.loop._train_epoch, itertools.count(1)

        def interrupted(*args: Any) -> float:
            if next(count) == n:
                raise KeyboardInterrupt
            return train_epoch(*args)

        monkeypatch.setattr(training.loop, "_train_epoch", interrupted)

    return arrange


def _stopped(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ae-train: interrupted"), err
    return err.strip()


def test_ctrl_c_in_a_dry_run_says_nothing_is_saved(
    data_root: Path, tmp_path: Path, ctrl_c_in_epoch: Callable[[int], None], capsys: pytest.CaptureFixture[str]
) -> None:
    ctrl_c_in_epoch(1)
    argv = ["--config", "mlp1-p2", "--dry-run", "--data-dir", str(data_root), "--store", str(tmp_path), *SMALL]
    assert _stopped(argv, capsys) == "ae-train: interrupted the dry run of mlp1-p2; a dry run saves nothing"
    assert not (tmp_path / ".train-state").exists()


def test_ctrl_c_after_some_configurations_names_those_left_to_resume(
    data_root: Path,
    tmp_path: Path,
    ctrl_c_in_epoch: Callable[[int], None],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    ctrl_c_in_epoch(4)  # the second epoch of the second configuration
    common = ["--epochs", "2", "--data-dir", str(data_root), "--store", str(tmp_path), *SMALL]
    argv = ["--config", "mlp1-p2", "--config", "mlp1-p16", "--config", "mlp2-p8", *common]
    assert _stopped(argv, capsys) == (
        "ae-train: interrupted after epoch 1 of 2 of mlp1-p16 (mlp1-p2 published); "
        "to resume the rest, run it again with only --config mlp1-p16 --config mlp2-p8"
    )
    store = CheckpointStore(tmp_path)
    assert store.names() == ["mlp1-p2"]

    caplog.set_level(logging.INFO, logger="training")
    assert main(["--config", "mlp1-p16", "--config", "mlp2-p8", *common]) == 0
    assert "mlp1-p16: resuming after epoch 1 of 2" in caplog.text
    assert {name: store.versions(name) for name in store.names()} == {"mlp1-p2": [1], "mlp1-p16": [1], "mlp2-p8": [1]}


def test_ctrl_c_before_training_exits_130_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def loading(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("training.cli.load_images", loading)
    argv = ["--config", "mlp1-p2", "--store", str(tmp_path)]
    assert _stopped(argv, capsys) == f"ae-train: interrupted; {RESUME}"


def test_ctrl_c_while_writing_the_report_says_how_to_write_it(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def writing(*args: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("training.cli.generate_report", writing)
    argv = ["--all", "--epochs", "1", "--data-dir", str(data_root), "--store", str(tmp_path / "store"), *SMALL]
    argv += ["--report-dir", str(tmp_path / "report")]
    assert _stopped(argv, capsys) == (
        "ae-train: interrupted while writing the report; every model is published; to write it, run "
        f"ae-report --store {tmp_path / 'store'} --out {tmp_path / 'report'} --dataset mnist"
    )
    assert len(CheckpointStore(tmp_path / "store").names()) == 7
