"""The service follows its store without a restart: new versions, promotions, rollbacks, removals, faults.

A real app over a copy of the test store, with its real watcher (filesystem events, and polling every
0.2 s); the store is changed through the store's own API (as ae-train and ae-models do) or by hand.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from models import CheckpointStore
from models.aliases import ALIASES_FILE
from service.app import create_app
from service.settings import Settings

ONE = {"images": [[0.0] * 784]}


@pytest.fixture
def store(store_root: Path, tmp_path: Path) -> CheckpointStore:
    root = tmp_path / "store"
    shutil.copytree(store_root, root)
    return CheckpointStore(root)


@pytest.fixture
def client(configure: Callable[..., Settings], store: CheckpointStore) -> Iterator[TestClient]:
    settings = configure(store=store.root, reload_interval=0.2, unload_grace_seconds=0.2, max_loaded_versions=2)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def eventually(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """`check()` once it is truthy: the watcher applies a change within its interval, not at once."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, "the service did not follow the store in time"
        time.sleep(0.05)
    return result


def served(client: TestClient, name: str = "mlp2-p2") -> dict[str, Any]:
    models = {m["name"]: m for m in client.get("/models").json()["models"]}
    return models.get(name, {})


def answering(client: TestClient, version: str = "") -> int:
    response = client.post(f"/encode?model=mlp2-p2{version}", json=ONE)
    assert response.status_code == 200, response.text
    return int(response.json()["version"])


def copy_version(store: CheckpointStore, source: int, promote: bool = False) -> int:
    """Publish a copy of a version through the store's publish, as ae-train would publish a new one."""

    def write(folder: Path) -> None:
        for file in store.path("mlp2-p2", source).iterdir():
            shutil.copy(file, folder / file.name)

    return store.publish("mlp2-p2", write, promote=promote)


def test_a_new_version_is_served_without_a_restart_but_not_promoted(client: TestClient, store: CheckpointStore) -> None:
    assert (served(client)["stable"], served(client)["latest"]) == (2, 2)
    assert copy_version(store, 1) == 3
    eventually(lambda: served(client)["latest"] == 3)
    assert served(client)["stable"] == 2 and answering(client) == 2  # publishing is not promoting
    assert answering(client, "&version=latest") == 3 and answering(client, "&version=3") == 3
    metrics = client.get("/metrics").text
    assert 'ae_loaded_versions{model="mlp2-p2"} 2.0' in metrics  # max_loaded_versions=2: 3 and 2, not 1
    assert "ae_store_reloads_total" in metrics


def test_promotion_and_rollback_go_live_whole(client: TestClient, store: CheckpointStore) -> None:
    copy_version(store, 1)
    eventually(lambda: served(client)["latest"] == 3)
    store.promote("mlp2-p2", 3, "test")
    eventually(lambda: answering(client) == 3)
    assert served(client)["stable"] == 3 and answering(client, "&version=stable") == 3
    store.rollback("mlp2-p2", "test")
    eventually(lambda: answering(client) == 2)
    response = client.post("/reconstruct?model=mlp2-p2&format=raw", content=bytes(784),
                           headers={"content-type": "application/octet-stream"})  # fmt: skip
    assert response.headers["x-model-version"] == "2" and response.headers["x-model"] == "mlp2-p2"


def test_a_removed_version_is_unloaded_and_a_pinned_request_for_it_is_a_404(
    client: TestClient, store: CheckpointStore
) -> None:
    copy_version(store, 1, promote=True)
    eventually(lambda: answering(client) == 3)
    shutil.rmtree(store.path("mlp2-p2", 3))  # removed by hand, stable alias and all
    eventually(lambda: served(client)["versions"] == [1, 2] or served(client)["versions"] == [2])
    pinned = client.post("/encode?model=mlp2-p2&version=3", json=ONE)
    assert pinned.status_code == 404 and pinned.json()["error"]["available_versions"] == served(client)["versions"]
    assert answering(client) == 2  # the stable alias names a version that is gone: the latest serves
    assert "mlp2-p2/3" in client.get("/readyz").json()["skipped"]


def test_a_broken_version_and_a_nonsense_alias_file_are_skipped_with_their_reasons(
    client: TestClient, store: CheckpointStore
) -> None:
    version = copy_version(store, 1)
    (store.path("mlp2-p2", version) / "model.safetensors").write_bytes(b"torn")
    eventually(lambda: "mlp2-p2/3" in client.get("/readyz").json()["skipped"])
    assert "checksum does not match" in client.get("/readyz").json()["skipped"]["mlp2-p2/3"]
    assert served(client)["versions"] == [1, 2] or served(client)["versions"] == [2]
    (store.root / "mlp2-p2" / ALIASES_FILE).write_text("{nonsense")
    skipped = eventually(lambda: client.get("/readyz").json()["skipped"].get("mlp2-p2/aliases.json"))
    assert "not valid JSON" in skipped and "keeping stable at 2" in skipped
    assert answering(client) == 2
    (store.root / "mlp2-p2" / ALIASES_FILE).write_text(json.dumps({"stable": 1, "history": []}))
    eventually(lambda: answering(client) == 1)  # fixed by hand: followed, and version 1 loaded for it
    assert "mlp2-p2/aliases.json" not in client.get("/readyz").json()["skipped"]
