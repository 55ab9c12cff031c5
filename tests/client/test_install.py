"""The client installs alone, with its light dependencies only: `pip install ./client` into a fresh virtual
environment (from the package index pip is configured with), then `import aeclient` and `ae-client` work
there, and neither torch nor the service is installed. About 30 s here; it needs the index, as any install."""

from __future__ import annotations

import os
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # live servers, browsers, benchmark or long training runs: make test-fast skips them

REPO = Path(__file__).resolve().parents[2]
CHECK = """
import importlib.util, aeclient
missing = [name for name in ("torch", "service", "models", "fastapi") if importlib.util.find_spec(name) is None]
print(aeclient.__file__, len(missing))
"""


def test_the_client_installs_alone_without_torch(tmp_path: Path) -> None:
    venv.create(tmp_path / "venv", with_pip=True)
    bin_dir = tmp_path / "venv" / "bin"
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}

    def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)

    source = shutil.copytree(REPO / "client", tmp_path / "client", ignore=shutil.ignore_patterns("build", "*.egg-info"))
    install = run(str(bin_dir / "python"), "-m", "pip", "install", "--quiet", str(source), timeout=240)  # builds there
    assert install.returncode == 0, install.stdout + install.stderr
    check = run(str(bin_dir / "python"), "-c", CHECK)
    assert check.returncode == 0, check.stderr
    location, missing = check.stdout.split()
    assert location.startswith(str(bin_dir.parent)) and missing == "4", check.stdout  # installed, and alone
    script = run(str(bin_dir / "ae-client"), "--help")
    assert script.returncode == 0 and "decode" in script.stdout, script.stderr
