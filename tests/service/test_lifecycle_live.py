"""Under load, nothing is lost: versions published, promoted, rolled back and deleted while clients send requests.

A real server (`python -m service.cli`) on a copy of the test store, following it every 0.2 s,
while client threads send requests for the stable version, the latest one, and a version pinned
by number that the test deletes. The test changes the store as ae-train and ae-models do (and
deletes a version folder by hand), and records when each store call began and when /models first
showed its effect: the service applies a change at some instant in that window. Every response
must then be a 200 from a version its alias named at some instant between the request's sending
and its answer, or, pinned to the deleted version, the documented 404 once the deletion began.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from liveserver import LiveServer, live_server

from bench.reload import publish_copy
from models import CheckpointStore

pytestmark = pytest.mark.slow  # live servers, browsers, benchmark or long training runs: make test-fast skips them

MODEL = "mlp2-p2"  # versions 1 and 2 in the test store, 2 stable
RAW = {"content-type": "application/octet-stream", "accept": "application/octet-stream"}
QUIET = 0.4  # seconds of traffic between two store changes
WAIT = 10.0  # seconds for the service to show a change, at most


@dataclass(frozen=True)
class Answer:
    sent: float  # time.monotonic() before the request left
    received: float  # and once its response was read
    status: int  # 0: no response at all
    version: int | None  # X-Model-Version
    detail: str = ""  # an error's body, or the exception


@dataclass(frozen=True)
class Change:
    """The service applied a change at some instant of [started, shown]: when the store call began, and
    when /models first showed its effect."""

    started: float
    shown: float
    value: int  # what the alias names after it (0: no alias, a version deleted)


@dataclass
class Alias:
    """The versions an alias named over time, as the service sees them: each change at an unknown instant
    of its window."""

    initial: int
    changes: list[Change]

    def possible(self, sent: float, received: float) -> set[int]:
        """Every version the alias may have named at some instant of [sent, received]."""
        values = [self.initial, *(c.value for c in self.changes)]
        starts = [-math.inf, *(c.started for c in self.changes)]  # the earliest each value can be in force
        ends = [*(c.shown for c in self.changes), math.inf]  # the latest it can still be in force
        return {v for v, start, end in zip(values, starts, ends, strict=True) if start <= received and sent <= end}

    def unexplained(self, answers: list[Answer]) -> list[Answer]:
        """The answers from a version the alias cannot have named while they were in flight."""
        return [a for a in answers if a.version not in self.possible(a.sent, a.received)]


# ---------------------------------------------------------------------------- the check itself


def test_the_alias_check_refuses_what_the_service_must_never_answer() -> None:
    """Stable 2, then 3 (store call at 10 s, shown at 11 s), then 2 again (20 s, shown 21 s)."""
    stable = Alias(2, [Change(10.0, 11.0, 3), Change(20.0, 21.0, 2)])
    good = [
        Answer(1.0, 2.0, 200, 2),  # before any change
        Answer(9.5, 10.5, 200, 2),  # in flight while the change may not be applied yet
        Answer(10.2, 10.4, 200, 3),  # within the window: already applied
        Answer(10.8, 11.5, 200, 2),  # accepted before it was applied, answered after it was shown
        Answer(12.0, 13.0, 200, 3),
        Answer(19.0, 22.0, 200, 3),  # spans the rollback: either
        Answer(19.0, 22.0, 200, 2),
    ]
    assert stable.unexplained(good) == []
    bad = [
        Answer(5.0, 6.0, 200, 1),  # a version never stable
        Answer(5.0, 6.0, 200, 3),  # the next stable, before its promotion began
        Answer(11.5, 12.0, 200, 2),  # the old stable, sent after the new one was shown
        Answer(12.0, 13.0, 200, None),  # no version said
        Answer(21.5, 22.0, 200, 3),  # the rolled-back version after the rollback was shown
    ]
    assert stable.unexplained(bad) == bad


# ---------------------------------------------------------------------------- clients


class Clients:
    """Threads that each send one kind of request over one keep-alive connection, until stopped."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.answers: dict[str, list[Answer]] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self, kind: str, path: str, **request: Any) -> None:
        answers = self.answers.setdefault(kind, [])
        thread = threading.Thread(target=self._send, args=(answers, path, request), name=kind, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _send(self, answers: list[Answer], path: str, request: dict[str, Any]) -> None:
        with self.server.client(timeout=10) as http:
            while not self._stop.is_set():
                sent = time.monotonic()
                try:
                    response = http.post(path, **request)
                except httpx.HTTPError as e:
                    answers.append(Answer(sent, time.monotonic(), 0, None, repr(e)))
                    continue
                version = response.headers.get("x-model-version")
                detail = "" if response.status_code == 200 else response.text
                answers.append(
                    Answer(sent, time.monotonic(), response.status_code, int(version) if version else None, detail)
                )

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(15)
        assert not any(thread.is_alive() for thread in self._threads), "a client did not finish"


@contextmanager
def sending(server: LiveServer) -> Iterator[Clients]:
    clients = Clients(server)
    try:
        for _ in range(3):  # unpinned: the stable version, raw bytes and JSON
            clients.start("stable", f"/reconstruct?model={MODEL}", content=bytes(784), headers=RAW)
        clients.start("stable", f"/encode?model={MODEL}", json={"images": [[0.0] * 784]})
        clients.start("latest", f"/encode?model={MODEL}&version=latest", json={"images": [[0.0] * 784]})
        for _ in range(2):  # pinned to version 1, which the test deletes
            clients.start("pinned", f"/reconstruct?model={MODEL}&version=1", content=bytes(784), headers=RAW)
        yield clients
    finally:
        clients.stop()


# ---------------------------------------------------------------------------- the store changing under load


class Watcher:
    """Polls /models on its own connection: when the service first shows a change."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def served(self) -> dict[str, Any]:
        models = {m["name"]: m for m in self.http.get("/models").json()["models"]}
        return dict(models[MODEL])

    def change(self, store_call: Callable[[], object], shown: Callable[[dict[str, Any]], bool], value: int) -> Change:
        """Make the change, then wait until /models shows it; the change's window."""
        started = time.monotonic()
        store_call()
        deadline = started + WAIT
        while not shown(self.served()):
            assert time.monotonic() < deadline, f"the service did not show the change in {WAIT} s: {self.served()}"
            time.sleep(0.02)
        change = Change(started, time.monotonic(), value)
        time.sleep(QUIET)  # traffic on the new state before the next change
        return change


def showing(key: str, value: int) -> Callable[[dict[str, Any]], bool]:
    return lambda model: bool(model[key] == value)


def _metric(text: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert found is not None, f"{name} not in /metrics"
    return float(found.group(1))


@pytest.fixture
def store(store_root: Path, tmp_path: Path) -> CheckpointStore:
    shutil.copytree(store_root, tmp_path / "store")
    return CheckpointStore(tmp_path / "store")


def test_publish_promote_rollback_and_delete_under_load_lose_nothing(store: CheckpointStore, tmp_path: Path) -> None:
    settings = {"default_model": MODEL, "reload_interval": 0.2, "unload_grace_seconds": 1, "access_log": "false"}
    with live_server(tmp_path / "server", store.root, **settings) as server, server.client() as http:
        watcher = Watcher(http)
        assert (watcher.served()["versions"], watcher.served()["stable"]) == ([1, 2], 2)
        with sending(server) as clients:
            began = time.monotonic()
            time.sleep(QUIET)
            latest = Alias(2, [watcher.change(partial(publish_copy, store, MODEL, 1), showing("latest", 3), 3)])
            assert watcher.served()["stable"] == 2  # publishing is not promoting
            moves = [(partial(store.promote, MODEL, 3, "test"), 3), (partial(store.rollback, MODEL, "test"), 2),
                     (partial(store.promote, MODEL, 3, "test"), 3)]  # fmt: skip
            stable = Alias(2, [watcher.change(call, showing("stable", value), value) for call, value in moves])
            gone = watcher.change(lambda: shutil.rmtree(store.path(MODEL, 1)), lambda m: 1 not in m["versions"], 0)
            while "unloaded mlp2-p2 version 1" not in server.log():  # after its grace period, 1 s
                assert time.monotonic() < gone.shown + WAIT, "version 1 was not unloaded"
                time.sleep(0.05)
        assert time.monotonic() - began < 30
        final = watcher.served()
        assert (final["versions"], final["stable"], final["latest"]) == ([2, 3], 3, 3)
        metrics = http.get("/metrics").text
        assert _metric(metrics, f'ae_loaded_versions{{model="{MODEL}"}}') == 2
        assert _metric(metrics, "ae_store_reloads_total") >= 6  # loading, publishing, three alias moves, a deletion

    everything = [a for answers in clients.answers.values() for a in answers]
    assert [a for a in everything if a.status == 0] == []  # no connection error, no timeout
    for kind, alias in [("stable", stable), ("latest", latest)]:
        answers = clients.answers[kind]
        assert [a for a in answers if a.status != 200] == [], kind
        assert alias.unexplained(answers) == [], kind
        for start, end in zip([-math.inf, *(c.shown for c in alias.changes)],
                              [*(c.started for c in alias.changes), math.inf], strict=True):  # fmt: skip
            assert any(start < a.sent and a.received < end for a in answers), f"{kind}: no traffic in a settled state"

    pinned = clients.answers["pinned"]
    served, refused = [a for a in pinned if a.status == 200], [a for a in pinned if a.status == 404]
    assert len(served) + len(refused) == len(pinned), [a for a in pinned if a.status not in (200, 404)]
    assert {a.version for a in served} == {1} and served and refused
    assert all(a.sent < gone.shown for a in served)  # never answered by version 1 once it was shown gone
    assert all(a.received > gone.started for a in refused)  # and refused only once the deletion began
    assert any(a.sent > gone.shown for a in refused)
    for answer in refused:
        error = json.loads(answer.detail)["error"]
        assert error["code"] == "not_found" and "has no version 1" in error["message"], error
        assert 1 not in error["available_versions"] and 3 in error["available_versions"], error
