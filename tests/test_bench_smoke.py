"""The benchmarks' seconds-long smoke modes: each script runs end to end and writes its tables.

The real figures come from running the scripts by hand (BENCHMARKS.md); this only keeps them
working. The serving and profiling smoke runs use wrk where it is installed, an asyncio httpx
client otherwise; profiling needs py-spy (in the dev extra).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # live servers, browsers, benchmark or long training runs: make test-fast skips them

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("script", "tables"),
    [
        ("train_speed", ["Seconds per epoch", "Time to quality"]),
        ("inference", ["In-process images/s, model", "In-process images/s, service forward"]),
        ("serving", ["1 image per request", "256 images per request", "Targets on CPU"]),
        ("profile_service", ["Profiled load", "by step of the request path", "by package"]),
        ("under_attack", ["/healthz while hostile uploads are processed"]),
        ("reload", ["Latency during reloads against quiet", "Every round of the reload benchmark"]),
        ("client", ["Encoding 512 images, 128 per request"]),
        ("rate_distortion", ["The lowest MSE within a budget", "Every method", "What float16 codes add"]),
        ("v2", ["V2 and REST on one server", "Target: V2 binary within 10% of REST raw"]),
    ],
)
def test_bench_smoke_mode_prints_and_writes_tables(script: str, tables: list[str], data_root: Path,
                                                   tmp_path: Path) -> None:  # fmt: skip
    if script == "profile_service":
        assert shutil.which("py-spy") or (Path(sys.executable).parent / "py-spy").exists(), "py-spy: the dev extra"
    env = os.environ | {"AE_DATA_DIR": str(data_root)}
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{script}", "--smoke", "--device", "cpu", "--out", str(tmp_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    for title in tables:
        assert title in done.stdout
    markdown = (tmp_path / f"{script}.md").read_text()
    assert "| --- |" in markdown and "Machine:" in markdown
    payload = json.loads((tmp_path / f"{script}.json").read_text())
    assert payload["tables"] and all(table["rows"] for table in payload["tables"])


def test_peer_frameworks_smoke_mode_builds_a_venv_and_compares(data_root: Path, tmp_path: Path) -> None:
    """bench/peers.py's smoke mode end to end: LitServe's own virtual environment (created on first use, torch
    from pip's cache), the same reconstructions as the model in-process, a table with both servers."""
    env = os.environ | {"AE_DATA_DIR": str(data_root)}
    done = subprocess.run(
        [sys.executable, "-m", "bench.peers", "--smoke", "--out", str(tmp_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    payload = json.loads((tmp_path / "peers.json").read_text())
    cells = payload["data"]["cells"]
    measured = {(cell["framework"], cell["form"]) for cell in cells if cell["results"][0]["requests"]}
    assert {("service", "REST JSON"), ("service", "REST raw"), ("litserve", "REST JSON")} <= measured
    assert all(diff <= 1e-5 for name, diff in payload["data"]["diffs"].items() if "JSON" in name)
    assert "| LitServe | litserve 0.2.19 |" in (tmp_path / "peers.md").read_text()


def test_a_peer_that_differs_from_the_model_is_refused() -> None:
    """The check before measuring: a reconstruction off by more than the tolerance stops the run."""
    from bench import peers

    expected = np.random.default_rng(0).random((4, 784), dtype=np.float32)
    assert peers.within_tolerance("REST JSON", peers.difference("REST JSON", expected + 5e-6, expected))
    assert not peers.within_tolerance("REST JSON", peers.difference("REST JSON", expected + 5e-5, expected))
    levels = np.round(expected * 255).astype(np.uint8)
    assert peers.within_tolerance("REST raw", peers.difference("REST raw", levels, expected))
    assert not peers.within_tolerance("REST raw", peers.difference("REST raw", levels // 2, expected))
