"""The service on a read-only root with only /tmp writable, as deploy/k8s runs it (readOnlyRootFilesystem, an
emptyDir on /tmp, MPLCONFIGDIR from the ConfigMap), checked for real: every mount read-only in a mount namespace
of its own (unshare), a fresh tmpfs on /tmp, and, as root, a user that owns nothing (65534).

Outside that namespace nothing changes: the mounts are made private before anything is remounted.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from liveserver import REPO

from bench.launch import LOOPBACK, free_port

pytestmark = pytest.mark.slow  # live servers, browsers, benchmark or long training runs: make test-fast skips them

BASE = REPO / "deploy" / "k8s" / "base" / "kustomization.yaml"
# Every mount read-only but the kernel's own, then /tmp writable: what a pod with readOnlyRootFilesystem and an
# emptyDir on /tmp sees. As root, the service then runs as nobody; otherwise as the namespace's mapped root.
ISOLATE = r"""
set -eu
mount --make-rprivate /
[ -z "$KEEP" ] || mount --bind /tmp /mnt  # the old /tmp, for what of it the service needs (KEEP)
awk '{print $2}' /proc/self/mounts | sort -u | while read -r point; do
    case "$point" in /proc|/proc/*|/sys|/sys/*|/dev|/dev/*) continue ;; esac
    mount -o remount,bind,ro "$point" 2>/dev/null || true
done
mount -t tmpfs -o size=64m tmpfs /tmp
for kept in $KEEP; do  # a checkout (and its .venv) under /tmp stays visible there, read-only
    mkdir -p "$kept" && mount --bind "/mnt${kept#/tmp}" "$kept" && mount -o remount,bind,ro "$kept"
done
if touch /tmp-probe 2>/dev/null || touch "$HOME/probe" 2>/dev/null; then echo "the root is writable" >&2; exit 97; fi
cd /tmp
if [ "$(id -u)" = 0 ] && [ "$REAL_UID" = 0 ]; then exec setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; fi
exec "$@"
"""


def kept_under_tmp() -> list[str]:
    """The checkout and the Python environment, where they lie under /tmp (a CI clone may): the fresh tmpfs
    on /tmp would hide them, so the isolation binds them back, read-only."""
    paths = {REPO.resolve(), Path(sys.prefix).resolve(), Path(sys.executable).resolve().parent}
    return sorted(str(path) for path in paths if path.is_relative_to("/tmp"))


def pod_settings() -> dict[str, str]:
    """The ConfigMap's literals, as the pods get them (deploy/k8s/base), on the CPU."""
    (generator,) = yaml.safe_load(BASE.read_text())["configMapGenerator"]
    return dict(literal.split("=", 1) for literal in generator["literals"]) | {"AE_DEVICE": "cpu"}


def test_the_service_serves_with_only_tmp_writable(tmp_path: Path) -> None:
    settings = pod_settings()
    assert settings["MPLCONFIGDIR"].startswith("/tmp/")
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("AE_")} | settings
    env |= {"PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1", "REAL_UID": str(os.geteuid()),
            "HOME": "/nonexistent", "KEEP": " ".join(kept_under_tmp())}  # fmt: skip
    unshare = ["unshare", "--mount"] + ([] if os.geteuid() == 0 else ["--map-root-user"])
    service = [sys.executable, "-m", "service.cli", "--host", LOOPBACK, "--port", str(port),
               "--store", str(REPO / "checkpoints")]  # fmt: skip
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([*unshare, "sh", "-c", ISOLATE, "isolate", *service], env=env, stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)  # fmt: skip
    try:
        with httpx.Client(base_url=f"http://{LOOPBACK}:{port}", timeout=30, trust_env=False) as client:
            deadline = time.monotonic() + 90
            while process.poll() is None and time.monotonic() < deadline:
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
            assert process.poll() is None, f"exited {process.returncode}:\n{log_path.read_text()}"
            seven = (REPO / "docs" / "examples" / "seven.png").read_bytes()
            png = client.post("/reconstruct?model=mlp2-p2&format=png", files={"file": ("seven.png", seven)})
            assert png.status_code == 200 and png.headers["content-type"] == "image/png"  # matplotlib drew it
            assert client.get("/latent-map?model=mlp2-p2&format=png").status_code == 200
            assert client.get("/docs").status_code == 200
    finally:
        process.terminate()
        process.wait(30)
    log = log_path.read_text()
    assert "serving 7 versions of 7 models" in log, log
    for complaint in ("Read-only file system", "Permission denied", "Matplotlib created a temporary", "not writable"):
        assert complaint not in log, log
