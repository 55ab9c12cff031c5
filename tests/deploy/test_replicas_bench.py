"""bench/replicas.py's smoke mode: replicas, nginx and the load generator end to end, the tables written.

The figures in BENCHMARKS.md come from running it by hand; this only keeps it working.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # live servers, browsers, benchmark or long training runs: make test-fast skips them

REPO = Path(__file__).resolve().parents[2]


def test_the_replicas_benchmark_runs_every_setup_and_writes_its_tables(data_root: Path, tmp_path: Path) -> None:
    env = os.environ | {"AE_DATA_DIR": str(data_root)}
    done = subprocess.run([sys.executable, "-m", "bench.replicas", "--smoke", "--out", str(tmp_path)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    payload = json.loads((tmp_path / "replicas.json").read_text())
    (single, many) = payload["tables"]
    assert "1 image per request" in single["title"] and "256 images per request" in many["title"]
    for table in (single, many):
        setups = [row[0] for row in table["rows"]]
        assert setups == ["1 replica, direct (all cores)", "1 replica behind nginx (all cores)",
                          "2 replicas behind nginx (1 core each)", "1 replica on 1 core, direct"]  # fmt: skip
        assert all(row[table["columns"].index("errors")] == 0 for row in table["rows"])
    assert "| --- |" in (tmp_path / "replicas.md").read_text()
