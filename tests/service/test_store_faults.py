"""A service over a store with faults: each bad version or entry is skipped with its reason, the rest serve.

The faults are made in a copy of the real test store; the service must start, list every fault
on /readyz (with paths relative to the store, never where the store lies), and serve every sound
version with /models and the inference endpoints unaffected.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from models.checkpoint import METADATA
from service.app import create_app
from service.settings import Settings


def edit(metadata_file: Path, **changes: object) -> None:
    metadata = json.loads(metadata_file.read_text())
    metadata.update(changes)
    metadata_file.write_text(json.dumps(metadata))


@pytest.fixture
def faulty_store(store_root: Path, tmp_path: Path) -> Path:
    root = tmp_path / "store"
    shutil.copytree(store_root, root)
    shutil.copytree(root / "mlp2-p2" / "1", root / "mlp2-p2" / "²")  # str.isdigit() says yes, int() no
    shutil.copytree(root / "mlp2-p2" / "1", root / "mlp2-p2" / "3")
    edit(root / "mlp2-p2" / "3" / METADATA, name="mlp2-p8")  # claims to be another model
    shutil.copytree(root / "mlp2-p2" / "1", root / "mlp2-p2" / "4")
    edit(root / "mlp2-p2" / "4" / METADATA, dataset="mnist")  # made /models a plain-text 500
    outside = tmp_path / "outside"
    shutil.copytree(root / "mlp2-p8" / "1", outside)
    (root / "mlp2-p8" / "2").symlink_to(outside, target_is_directory=True)  # leads out of the store
    (root / "NOTES.md").write_text("not a model")
    return root


def test_every_fault_is_skipped_with_its_reason_and_the_rest_serve(
    configure: Callable[..., Settings], faulty_store: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with TestClient(create_app(configure(store=faulty_store))) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        skipped = ready.json()["skipped"]
        assert set(skipped) == {"mlp1-p2/1", "mlp2-p2/²", "mlp2-p2/3", "mlp2-p2/4", "mlp2-p8/2", "NOTES.md"}
        assert "names model 'mlp2-p8'" in skipped["mlp2-p2/3"]
        assert "'dataset' must be a JSON object" in skipped["mlp2-p2/4"]
        assert "leads out of" in skipped["mlp2-p8/2"]
        assert str(faulty_store) not in ready.text and str(faulty_store.parent) not in ready.text
        models = client.get("/models")
        assert models.status_code == 200, models.text
        versions = {m["name"]: m["versions"] for m in models.json()["models"]}
        assert versions == {"mlp2-p2": [1, 2], "mlp2-p8": [1]}
        pinned = client.post("/encode?model=mlp2-p2&version=3", json={"images": [[0.0] * 784]})
        assert pinned.status_code == 404 and pinned.json()["error"]["available_versions"] == [1, 2]
        latest = client.post("/encode?model=mlp2-p2", json={"images": [[0.0] * 784]})
        assert latest.status_code == 200 and latest.json()["version"] == 2
    assert "not serving mlp2-p2/²" in caplog.text


def test_a_store_that_does_not_exist_says_so_at_startup(
    configure: Callable[..., Settings], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    with TestClient(create_app(configure(store=tmp_path / "nowhere"))) as client:
        assert client.get("/readyz").status_code == 503
    assert f"the checkpoint store {tmp_path / 'nowhere'} does not exist" in caplog.text
