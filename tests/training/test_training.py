import math
import os
import re
import signal
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from models import CheckpointStore, get_config, load_checkpoint
from models.checkpoint import read_history
from training.cli import main
from training.data import ImageData
from training.loop import TrainingDiverged, evaluate, fit
from training.recipes import get_recipe

TINY = get_recipe("fast").with_epochs(3)
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d [\d:,]+ (INFO|WARNING) ")
RESUME = "run the same command again to resume"


@pytest.mark.slow
def test_a_few_epochs_lower_the_loss(small_mnist: ImageData) -> None:
    torch.manual_seed(0)
    from models import Autoencoder

    untrained = evaluate(Autoencoder(get_config("mlp2-p2")), small_mnist.test_images)
    trained = fit(get_config("mlp2-p2"), small_mnist, TINY)
    test_mse = [row["test_mse"] for row in trained.history]
    assert len(test_mse) == 3
    assert test_mse[-1] < test_mse[0] < untrained
    assert trained.history[-1]["train_mse"] < 0.1


@pytest.mark.slow
def test_same_seed_same_metrics(small_mnist: ImageData) -> None:
    def metrics(seed: int) -> list[tuple[float, float]]:
        history = fit(get_config("mlp2bn-p2"), small_mnist, TINY.with_epochs(2), seed=seed).history
        return [(row["train_mse"], row["test_mse"]) for row in history]

    assert metrics(7) == metrics(7)
    assert metrics(7) != metrics(8)


@pytest.mark.slow
def test_reference_recipe_uses_the_dataloader(small_mnist: ImageData) -> None:
    recipe = get_recipe("reference").with_epochs(1)
    assert (recipe.batch_size, recipe.lr, recipe.loader) == (64, 5e-3, "dataloader")
    history = fit(get_config("mlp1-p2"), small_mnist, recipe).history
    assert history[0]["test_mse"] < 0.07


@pytest.mark.slow
def test_nan_loss_stops_the_run_and_publishes_nothing(
    small_mnist: ImageData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    poisoned = small_mnist.train_images.clone()
    poisoned[5, 300] = math.nan
    bad = replace(small_mnist, train_images=poisoned)
    with pytest.raises(TrainingDiverged, match="became nan in epoch 1"):
        fit(get_config("mlp2-p2"), bad, TINY, label="mlp2-p2")

    monkeypatch.setattr("training.cli.load_images", lambda *args, **kwargs: bad)
    store = tmp_path / "store"
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", "mlp2-p2", "--epochs", "1", "--store", str(store)])
    assert exit_info.value.code == 1
    assert CheckpointStore(store).versions("mlp2-p2") == []


@pytest.mark.slow
def test_cli_publishes_versions_that_load(data_root: Path, tmp_path: Path, mnist: ImageData) -> None:
    args = ["--config", "mlp2-p8", "--epochs", "2", "--train-limit", "1024", "--test-limit", "256"]
    args += ["--data-dir", str(data_root), "--no-download", "--store", str(tmp_path), "--device", "cpu"]
    assert main(args) == 0
    assert main(args) == 0
    store = CheckpointStore(tmp_path)
    assert store.versions("mlp2-p8") == [1, 2]
    checkpoint = load_checkpoint(store.path("mlp2-p8", 2))
    meta = checkpoint.metadata
    assert meta["config"] == "mlp2-p8" and meta["epochs"] == 2 and meta["seed"] == 0
    assert meta["dataset"] == {"name": "mnist", "sha256": mnist.sha256, "train_images": 1024, "test_images": 256}
    assert meta["recipe"]["name"] == "fast"
    history = read_history(store.path("mlp2-p8", 2))
    assert [row["epoch"] for row in history] == [1, 2]
    assert meta["metrics"]["test_mse"] == pytest.approx(history[-1]["test_mse"])
    test_images = mnist.test_images[:256]
    assert evaluate(checkpoint.model, test_images) == pytest.approx(meta["metrics"]["test_mse"], rel=1e-5)
    latents = checkpoint.latents
    assert latents.codes.shape == (256, 8) and torch.equal(latents.labels, mnist.test_labels[:256])
    assert latents.to_map(latents.codes).shape == (256, 2)
    assert not (tmp_path / ".train-state").exists() or not any((tmp_path / ".train-state").iterdir())


def test_dry_run_publishes_nothing(data_root: Path, tmp_path: Path) -> None:
    args = ["--config", "mlp1-p2", "--dry-run", "--data-dir", str(data_root), "--store", str(tmp_path)]
    assert main(args) == 0
    assert CheckpointStore(tmp_path).names() == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--config", "nope"], "unknown configuration 'nope'; valid names: mlp1-p2"),
        (["--config", "mlp1-p2", "--data-dir", "/nonexistent", "--no-download"], "/nonexistent/MNIST/raw must hold"),
        (["--config", "mlp1-p2", "--config", "mlp1-p16", "--name", "x"], "--name needs exactly one --config"),
    ],
)
def test_cli_errors_are_clear(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 1
    assert message in capsys.readouterr().err


def _train_command(data_root: Path, store: Path, epochs: int = 6, train_limit: int = 4096) -> list[str]:
    return [
        sys.executable, "-m", "training.cli", "--config", "mlp2-p2", "--epochs", str(epochs),
        "--train-limit", str(train_limit), "--test-limit", "512", "--threads", "1", "--device", "cpu",
        "--data-dir", str(data_root), "--no-download", "--store", str(store),
    ]  # fmt: skip


@pytest.mark.slow
def test_killed_run_resumes_and_ends_like_an_uninterrupted_one(data_root: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    subprocess.run(_train_command(data_root, whole), check=True, env=env, capture_output=True)

    process = subprocess.Popen(_train_command(data_root, resumed), env=env, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    for line in process.stderr:
        if "epoch 3/6" in line:
            process.send_signal(signal.SIGKILL)
            break
    process.wait()
    assert process.returncode == -signal.SIGKILL
    assert CheckpointStore(resumed).versions("mlp2-p2") == []  # killed: nothing published

    finished = subprocess.run(_train_command(data_root, resumed), check=True, env=env, capture_output=True, text=True)
    assert "resuming after epoch 3 of 6" in finished.stderr or "resuming after epoch 4 of 6" in finished.stderr

    def metrics(store: Path) -> tuple[list[dict[str, float]], dict]:
        folder = CheckpointStore(store).path("mlp2-p2", 1)
        rows = [{k: v for k, v in row.items() if k != "seconds"} for row in read_history(folder)]
        return rows, load_checkpoint(folder).metadata["metrics"]

    assert metrics(resumed) == metrics(whole)


@pytest.mark.slow
def test_ctrl_c_says_in_one_line_how_to_resume_and_the_same_command_does(data_root: Path, tmp_path: Path) -> None:
    command = _train_command(data_root, tmp_path, epochs=20, train_limit=2048)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(60, process.kill)  # a hung run fails the test instead of hanging it
    watchdog.start()
    try:
        assert process.stderr is not None
        lines = []
        for line in process.stderr:
            lines.append(line.rstrip("\n"))
            if "epoch 2/20" in line:  # logged once that epoch's state is saved
                process.send_signal(signal.SIGINT)
                break
        lines += process.stderr.read().splitlines()
        returncode = process.wait()
    finally:
        watchdog.cancel()

    assert returncode == 130, lines
    stopped = re.fullmatch(r"ae-train: interrupted after epoch (\d+) of 20 of mlp2-p2; " + RESUME, lines[-1])
    assert stopped, lines
    assert [line for line in lines[:-1] if not LOG_LINE.match(line)] == []  # nothing else: no traceback
    assert CheckpointStore(tmp_path).versions("mlp2-p2") == []
    saved = int(stopped.group(1))
    assert 2 <= saved < 20

    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert f"mlp2-p2: resuming after epoch {saved} of 20" in again.stderr
    history = read_history(CheckpointStore(tmp_path).path("mlp2-p2", 1))
    assert [row["epoch"] for row in history] == list(range(1, 21))


def test_recipes_and_their_per_configuration_adjustments() -> None:
    fast = get_recipe("fast")
    assert (fast.batch_size, fast.lr, fast.schedule, fast.loader) == (256, 3e-3, "cosine", "tensor")
    assert get_recipe("fast", "mlp2-p2") == fast
    tuned = get_recipe("fast", "mlp1-p2")
    assert (tuned.name, tuned.epochs, tuned.batch_size, tuned.lr) == ("fast", 40, 128, 1e-2)
    assert get_recipe("reference", "mlp1-p2") == get_recipe("reference")  # the report's recipe stays exact
    assert get_recipe("fast", "mlp1-p2").with_epochs(3).epochs == 3
    with pytest.raises(ValueError, match="valid: reference, fast"):
        get_recipe("slow")


def test_loader_override_changes_only_the_loader() -> None:
    reference = get_recipe("reference")
    in_memory = reference.with_loader("tensor")
    assert in_memory.loader == "tensor" and in_memory.with_loader(None) == in_memory
    assert (in_memory.batch_size, in_memory.lr, in_memory.epochs) == (reference.batch_size, reference.lr, 100)
    with pytest.raises(ValueError, match="valid: dataloader, tensor"):
        reference.with_loader("disk")
