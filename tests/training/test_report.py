"""The experiment report: sections, figures, determinism, metrics with known answers, the CLIs."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models import CONFIGS, CheckpointStore, get_config
from training.cli import main as train_main
from training.data import ImageData
from training.loop import fit
from training.publish import publish
from training.recipes import get_recipe
from training.report import build_report, latest_checkpoints, main
from training.report.figures import save
from training.report.metrics import confused_pairs, fit_linear_autoencoders, latent_scores
from training.report.output import model_drawings, sample_digits
from training.report.recipes import mean_image_mse
from training.report.results import evaluate_model
from training.report.sources import ordered_names, reference_runs

pytestmark = pytest.mark.slow  # live servers, browsers, benchmark or long training runs: make test-fast skips them

SECTIONS = ["# Experiment report", "## Summary", "## Reconstructions", "## Loss curves", "## Latent maps"]
SECTIONS += ["### Decoded manifolds (p = 2)", "## Confusions"]
MODELS = ["mlp2-p2", "mlp2-p8"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
REPO = Path(__file__).resolve().parents[2]
SHIPPED_REPORT = REPO / "docs" / "report"
# "A few grey levels" (of 255) across machines, as the header says; the most seen between two machines is 4.
GREY_LEVELS = 8


@pytest.fixture(scope="module")
def store_root(tmp_path_factory: pytest.TempPathFactory, small_mnist: ImageData) -> Path:
    """Two configurations (p = 2 and p = 8) trained for two epochs, through the real publishing code."""
    root = tmp_path_factory.mktemp("report-store")
    recipe = get_recipe("fast").with_epochs(2)
    for name in MODELS:
        publish(CheckpointStore(root), name, name, fit(get_config(name), small_mnist, recipe), small_mnist, recipe, 0)
    return root


@pytest.fixture(scope="module")
def report(store_root: Path, small_mnist: ImageData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    checkpoints = latest_checkpoints(CheckpointStore(store_root), "mnist")
    return build_report(checkpoints, small_mnist, tmp_path_factory.mktemp("report"), str(store_root))


def _linked_figures(readme: Path) -> list[str]:
    return re.findall(r"\]\((figures/[^)]+\.png)\)", readme.read_text())


def test_report_has_every_section_and_a_valid_png_for_every_link(report: Path) -> None:
    text = report.read_text()
    for heading in SECTIONS:
        assert re.search(f"^{re.escape(heading)}$", text, re.MULTILINE), heading
    linked = set(_linked_figures(report))
    expected = {"reconstructions", "loss-curves", "latent-maps", "manifolds", "manifold_mlp2-p2"}
    expected |= {f"{kind}_{name}" for kind in ("reconstructions", "loss", "latent") for name in MODELS}
    assert linked == {f"figures/{name}.png" for name in expected}
    on_disk = {f"figures/{path.name}" for path in (report.parent / "figures").iterdir()}
    assert on_disk == linked  # nothing generated that the report does not show
    for relative in linked:
        path = report.parent / relative
        assert path.read_bytes().startswith(PNG_SIGNATURE)
        with Image.open(path) as image:
            image.verify()


def test_summary_has_a_row_per_configuration_and_a_pca_row_per_p(report: Path) -> None:
    text = report.read_text()
    for name in MODELS:
        assert f"| **{name}** |" in text
    for p in (2, 8):
        assert f"| *PCA p = {p}* |" in text
    assert "PCA p = 16" not in text  # only the sizes present in the store
    # Two epochs on 2,048 images leave both models behind PCA; the text must say so, not assume the opposite.
    assert "Every configuration beats PCA" not in text
    assert "**mlp2-p2** and **mlp2-p8** do not" in text


def test_regenerating_on_one_machine_gives_the_same_bytes_and_removes_stale_figures(
    report: Path, store_root: Path, data_root: Path, tmp_path: Path
) -> None:
    """The header's claim on one machine: the same Markdown and the same figures, byte for byte."""
    stale = tmp_path / "figures" / "latent_removed-model.png"
    stale.parent.mkdir()
    stale.write_bytes(PNG_SIGNATURE)
    unrelated = tmp_path / "notes.txt"
    unrelated.write_text("kept")
    args = ["--store", str(store_root), "--out", str(tmp_path), "--data-dir", str(data_root), "--no-download"]
    assert main(args) == 0
    # The CLI loads all of MNIST, then keeps the images the checkpoints were trained on: the fixture's subset.
    assert (tmp_path / "README.md").read_bytes() == report.read_bytes()
    assert "2,048 training and 512 test images" in report.read_text()
    assert "on the same machine the same figures" in report.read_text()
    for relative in _linked_figures(report):
        assert (tmp_path / relative).read_bytes() == (report.parent / relative).read_bytes(), relative
    assert not stale.exists()
    assert unrelated.read_text() == "kept"


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGBA"), dtype=np.int16)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_shipped_figures_redrawn_here_are_within_a_few_grey_levels(name: str, mnist: ImageData, tmp_path: Path) -> None:
    """The header's claim across machines, on the figures of one shipped checkpoint (the cheap ones to redraw)."""
    result = evaluate_model(CheckpointStore(REPO / "checkpoints").load_latest(name), mnist)
    for relative, draw in model_drawings(result, *sample_digits(mnist)).items():
        save(draw(), tmp_path / "redrawn.png")
        redrawn, shipped = _pixels(tmp_path / "redrawn.png"), _pixels(SHIPPED_REPORT / relative)
        assert redrawn.shape == shipped.shape, relative
        difference = np.abs(redrawn - shipped).max(axis=-1)
        assert difference.max() <= GREY_LEVELS, relative
        assert np.mean(difference > 0) < 0.01, relative  # "in under 1 % of its pixels"


def _clusters(centres: np.ndarray, per_class: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`per_class` points tightly around each centre, labelled by the centre's index."""
    labels = np.repeat(np.arange(len(centres)), per_class)
    return (centres[labels] + rng.normal(scale=0.1, size=(len(labels), centres.shape[1]))).astype(np.float32), labels


def test_perfectly_separated_clusters_score_perfectly() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=100.0, size=(10, 4))  # ten digits, far apart
    (train, train_labels), (test, test_labels) = _clusters(centres, 50, rng), _clusters(centres, 20, rng)
    scores = latent_scores(train, train_labels, test, test_labels)
    assert scores.knn_accuracy == 1.0
    assert scores.ari == pytest.approx(1.0)
    assert scores.silhouette > 0.9
    assert np.array_equal(scores.confusion, np.diag(np.full(10, 20)))
    assert confused_pairs(scores.confusion) == []


def test_labels_unrelated_to_the_codes_score_near_chance() -> None:
    rng = np.random.default_rng(1)
    codes = rng.normal(size=(3000, 2)).astype(np.float32)
    labels = rng.integers(0, 10, size=3000)
    scores = latent_scores(codes[:2000], labels[:2000], codes[2000:], labels[2000:])
    assert abs(scores.ari) < 0.02
    assert scores.knn_accuracy < 0.2
    assert scores.silhouette < 0.05


def test_confused_pairs_add_both_directions_and_break_ties_by_digit() -> None:
    confusion = np.diag(np.full(10, 100))
    confusion[4, 9], confusion[9, 4] = 7, 5  # 12
    confusion[8, 5], confusion[5, 8] = 8, 3  # 11
    confusion[3, 5] = 11  # 11, ties with 5-8 and comes first (lower digits)
    confusion[1, 7] = 2
    pairs = confused_pairs(confusion)
    assert [(p.a, p.b, p.a_as_b, p.b_as_a, p.count) for p in pairs] == [
        (4, 9, 7, 5, 12),
        (3, 5, 11, 0, 11),
        (5, 8, 3, 8, 11),
    ]
    # Rate: mistakes over the test images of both digits (row sums: 4 has 107, 9 has 105).
    assert pairs[0].rate == pytest.approx(12 / 212)


def test_pca_baseline_matches_the_known_mse(mnist: ImageData) -> None:
    linear = fit_linear_autoencoders(mnist.train_images.numpy(), [2, 8, 16])
    test = mnist.test_images.numpy()
    for p, expected in [(2, 0.0557), (8, 0.0374), (16, 0.0269)]:
        reconstructions = linear[p].decode(linear[p].encode(test))
        assert float(((reconstructions - test) ** 2).mean()) == pytest.approx(expected, abs=3e-4), p


def test_registry_order_then_other_names_alphabetically() -> None:
    assert ordered_names(["zeta", "mlp2-p2", "alpha", "mlp1-p2"]) == ["mlp1-p2", "mlp2-p2", "alpha", "zeta"]


def test_cli_fails_clearly_without_checkpoints(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--store", str(tmp_path / "empty"), "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 1
    assert "no valid checkpoints of mnist" in capsys.readouterr().err


def test_training_all_configurations_writes_the_report(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("training.cli.CONFIGS", {"mlp2-p2": get_config("mlp2-p2")})  # "all", kept short
    out = tmp_path / "report"
    args = ["--all", "--epochs", "1", "--train-limit", "512", "--test-limit", "128", "--device", "cpu"]
    args += ["--data-dir", str(data_root), "--no-download", "--store", str(tmp_path / "store")]
    args += ["--report-dir", str(out)]
    assert train_main(args) == 0
    text = (out / "README.md").read_text()
    assert "| **mlp2-p2** |" in text
    assert "## Recipes compared" not in text and "Without `--reference`" not in text
    assert f"Regenerate it with `ae-report --store {tmp_path / 'store'}`." in text


def test_training_all_with_reference_runs_keeps_the_recipe_comparison(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ae-train --all --reference STORE` writes the report as `ae-report --reference STORE` would."""
    monkeypatch.setattr("training.cli.CONFIGS", {"mlp2-p2": get_config("mlp2-p2")})
    reference, out = tmp_path / "reference", tmp_path / "report"
    common = ["--epochs", "1", "--train-limit", "512", "--test-limit", "128", "--device", "cpu"]
    common += ["--data-dir", str(data_root), "--no-download"]
    assert train_main(["--config", "mlp2-p2", "--recipe", "reference", "--store", str(reference), *common]) == 0
    args = ["--all", *common, "--store", str(tmp_path / "store"), "--report-dir", str(out)]
    assert train_main([*args, "--reference", str(reference)]) == 0
    text = (out / "README.md").read_text()
    assert "## Recipes compared" in text and "| mlp2-p2 | 1 |" in text.split("## Recipes compared")[1]
    assert f"Regenerate it with `ae-report --store {tmp_path / 'store'}`." in text
    assert 'Without `--reference` the command keeps the "Recipes compared" section' in text
    # Again without --reference: refused at once, before training anything (the new versions' report
    # could not keep the section), with nothing published and the report untouched.
    before = CheckpointStore(tmp_path / "store").versions("mlp2-p2")
    with pytest.raises(SystemExit) as refused:
        train_main(args)
    assert refused.value.code == 1
    assert CheckpointStore(tmp_path / "store").versions("mlp2-p2") == before
    assert (out / "README.md").read_text() == text


@pytest.fixture(scope="module")
def reference_root(small_mnist: ImageData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with a one-epoch reference-recipe run of mlp2-p2, and a fast-recipe version on top of it."""
    root = tmp_path_factory.mktemp("reference")
    for recipe in (get_recipe("reference").with_epochs(1).with_loader("tensor"), get_recipe("fast").with_epochs(1)):
        trained = fit(get_config("mlp2-p2"), small_mnist, recipe)
        publish(CheckpointStore(root), "mlp2-p2", "mlp2-p2", trained, small_mnist, recipe, 0)
    return root


@pytest.fixture(scope="module")
def compared(
    store_root: Path, reference_root: Path, small_mnist: ImageData, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A report with the "Recipes compared" section, as `ae-report --reference` writes it."""
    checkpoints = latest_checkpoints(CheckpointStore(store_root), "mnist")
    runs = reference_runs(CheckpointStore(reference_root), MODELS)
    return build_report(checkpoints, small_mnist, tmp_path_factory.mktemp("compared"), str(store_root), runs)


def _files(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_recipes_section_compares_with_reference_runs(
    compared: Path, store_root: Path, reference_root: Path, small_mnist: ImageData
) -> None:
    runs = reference_runs(CheckpointStore(reference_root), MODELS)
    # the fast-recipe version on top is not a reference run: the comparison looks past it
    assert list(runs) == ["mlp2-p2"] and len(runs["mlp2-p2"].history) == 1

    floor = mean_image_mse(small_mnist)
    mean = small_mnist.train_images.mean(0)
    assert floor == pytest.approx(((small_mnist.test_images - mean) ** 2).mean().item())

    text = compared.read_text()
    assert "## Recipes compared" in text and "figures/recipes.png" in _linked_figures(compared)
    assert f"Regenerate it with `ae-report --store {store_root}`." in text
    two_epochs, one_epoch = trained_mse(store_root), runs["mlp2-p2"].test_mse
    verdict = "fast" if two_epochs < one_epoch else "reference"
    assert f"| mlp2-p2 | 2 | {two_epochs:.4f} | 1 | {one_epoch:.4f} | **{verdict}** |" in text
    assert "mlp2-p8 |" not in text.split("## Recipes compared")[1]  # no reference run: not compared


def test_regenerating_without_the_reference_runs_keeps_the_recipe_comparison(
    compared: Path, store_root: Path, data_root: Path, tmp_path: Path
) -> None:
    """A fresh clone has no reference runs: the command the report gives still regenerates it whole."""
    shutil.copytree(compared.parent, tmp_path, dirs_exist_ok=True)
    args = ["--store", str(store_root), "--out", str(tmp_path), "--data-dir", str(data_root), "--no-download"]
    assert main(args) == 0
    assert _files(tmp_path) == _files(compared.parent)  # the section and its figure too, byte for byte


def test_regenerating_other_checkpoints_without_the_reference_runs_is_refused(
    compared: Path, store_root: Path, data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Keeping a comparison of other checkpoints would be wrong, dropping it silent: neither, it says so."""
    other_store, out = tmp_path / "other-store", tmp_path / "report"
    shutil.copytree(store_root, other_store)
    shutil.copytree(compared.parent, out)
    args = ["--store", str(other_store), "--out", str(out), "--data-dir", str(data_root), "--no-download"]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 1
    assert "compares the recipes for other checkpoints" in capsys.readouterr().err
    assert _files(out) == _files(compared.parent)  # nothing written, nothing removed


@pytest.mark.parametrize(
    ("reference", "expected"),
    [("missing", "no such folder of reference-recipe runs"), ("store", "no reference-recipe runs of mlp2-p2, mlp2-p8")],
    ids=["missing", "fast-runs-only"],
)
def test_reference_store_without_reference_runs_is_refused_in_one_line(
    reference: str, expected: str, compared: Path, store_root: Path, tmp_path: Path
) -> None:
    """`--reference` naming no folder (or one with no reference-recipe runs) is a mistake, not a request to drop."""
    out = tmp_path / "report"
    shutil.copytree(compared.parent, out)
    store = tmp_path / "runs" / "reference" if reference == "missing" else store_root  # store: fast runs only
    args = ["--store", str(store_root), "--out", str(out), "--reference", str(store)]
    result = subprocess.run(
        [sys.executable, "-m", "training.report", *args], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"ae-report: error: --reference {store}: {expected}"]
    assert _files(out) == _files(compared.parent)


def trained_mse(store_root: Path) -> float:
    return float(CheckpointStore(store_root).load_latest("mlp2-p2").metadata["metrics"]["test_mse"])
