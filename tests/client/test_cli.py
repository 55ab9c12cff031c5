"""ae-client against a real server: a folder of real MNIST digits as PNG files encoded into a codes file, decoded
back into PNG files, reconstructed with a CSV of MSEs; float16 codes; an .npy array; errors."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from clientsupport import KEY, write_pngs
from liveserver import REPO, LiveServer
from PIL import Image

from aeclient import Client
from aeclient.cli import main
from aeclient.files import Codes

pytestmark = pytest.mark.slow  # live servers, browsers, benchmark or long training runs: make test-fast skips them

COUNT = 150  # more than one request's worth (64) on the test server


def run(server: LiveServer, *args: str) -> int:
    return main(["--url", server.url, "--api-key", KEY, "--quiet", *args])


def test_encode_decode_reconstruct_a_folder_round_trip(service: LiveServer, test_digits: np.ndarray, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    digits = test_digits[:COUNT]
    folder = tmp_path / "digits"
    paths = write_pngs(digits, folder)
    codes_file = tmp_path / "codes.npz"

    assert run(service, "--model", "mlp2-p8", "encode", str(folder), "-o", str(codes_file)) == 0
    said = capsys.readouterr().out
    codes = Codes.load(codes_file)
    assert (codes.model, codes.version, codes.codes.dtype, codes.codes.shape) == ("mlp2-p8", 1, np.float32, (COUNT, 8))
    assert codes.names == [path.name for path in paths]
    with Client(service.url, api_key=KEY) as client:
        np.testing.assert_allclose(codes.codes, client.encode(paths, model="mlp2-p8"), atol=1e-6)
        _, mse = client.reconstruct(paths, model="mlp2-p8")
        decoded = client.decode(codes.codes, model="mlp2-p8", version=1)
    assert f"encoded {COUNT} images with mlp2-p8 v1" in said and "32 bytes per image" in said
    assert "24.5x against raw 8-bit pixels" in said and "against the files as they are" in said
    assert f"mean MSE of the reconstructions: {mse.mean():.5f}" in said

    out = tmp_path / "decoded"
    assert run(service, "decode", str(codes_file), "-o", str(out)) == 0
    assert f"decoded {COUNT} images with mlp2-p8 v1" in capsys.readouterr().out
    written = sorted(out.iterdir())
    assert [p.name for p in written] == [p.name for p in paths]
    assert np.array_equal(np.stack([np.asarray(Image.open(p)) for p in written]), decoded)

    report, images = tmp_path / "mse.csv", tmp_path / "reconstructed"
    assert run(service, "--model", "mlp2-p8", "reconstruct", str(folder), "-o", str(report),
               "--images", str(images)) == 0  # fmt: skip
    said = capsys.readouterr().out
    rows = list(csv.DictReader(report.open()))
    assert [row["name"] for row in rows] == codes.names
    np.testing.assert_allclose([float(row["mse"]) for row in rows], mse, atol=1e-6)
    assert f"mean MSE {mse.mean():.5f}" in said and "24.5x" in said
    assert len(list(images.iterdir())) == COUNT


def test_float16_codes_from_an_npy_array(service: LiveServer, test_digits: np.ndarray, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    array = tmp_path / "digits.npy"
    np.save(array, np.rint(test_digits[:COUNT] * 255).astype(np.uint8).reshape(-1, 28, 28))
    codes_file = tmp_path / "codes16.npz"
    assert run(service, "--model", "mlp2-p16", "encode", str(array), "-o", str(codes_file), "--float16") == 0
    said = capsys.readouterr().out
    codes = Codes.load(codes_file)
    assert codes.codes.dtype == np.float16 and codes.names[:2] == ["000", "001"]
    assert "32 bytes per image" in said and "24.5x against raw 8-bit pixels" in said
    assert "float16 codes move the decoded pixels by a mean squared" in said
    with Client(service.url, api_key=KEY) as client:
        exact = client.encode(test_digits[:COUNT], model="mlp2-p16")
    assert np.abs(codes.codes.astype(np.float32) - exact).max() <= np.abs(exact).max() * 2**-11


def test_errors_are_one_line_and_exit_status_1(service: LiveServer, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    (tmp_path / "empty").mkdir()
    assert run(service, "encode", str(tmp_path / "empty"), "-o", str(tmp_path / "x.npz")) == 1
    assert "no .png, .jpg, .jpeg files" in capsys.readouterr().err
    assert main(["--url", service.url, "models"]) == 1
    assert capsys.readouterr().err.startswith("ae-client: 401 unauthorized:")
    codes = tmp_path / "codes.npz"
    Codes(np.zeros((1, 2), np.float32), ["a.png"], "mlp2-p2", 1).save(codes)
    assert run(service, "--model", "mlp2-p8", "decode", str(codes), "-o", str(tmp_path / "out")) == 1
    assert "holds codes of mlp2-p2 v1; only that version decodes them" in capsys.readouterr().err


def test_the_console_script_runs_as_a_module() -> None:
    done = subprocess.run([sys.executable, "-m", "aeclient.cli", "--help"], cwd=REPO, capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO / "client"), "PATH": ""}, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "encode" in done.stdout and "reconstruct" in done.stdout and "$AE_URL" in done.stdout
