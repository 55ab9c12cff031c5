"""Three real replicas behind real nginx (deploy/nginx's configuration), sharing one checkpoint store, on loopback.

What a client of the load balancer sees when a replica is killed or stopped under load (no failed request),
what every replica serves after a version is published and promoted in the shared store, and that nginx and
the service agree on the body limit. Replicas are `python -m service.cli` (bench.balancer, bench.launch).
"""

from __future__ import annotations

import shutil
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from bench import balancer
from models import CheckpointStore

pytestmark = pytest.mark.slow  # live servers, browsers, benchmark or long training runs: make test-fast skips them

REPO = Path(__file__).resolve().parents[2]
MODEL = "mlp2-p2"
IMAGE = bytes(range(256)) * 3 + bytes(16)  # one 784-pixel image, raw
RAW = {"content-type": "application/octet-stream"}
LIMIT = 784 * 1024  # AE_MAX_BODY_BYTES here: 1,024 raw images
RELOAD_INTERVAL = 1.0
DRAIN_SECONDS = 2.0
SETTINGS = {
    "AE_DEVICE": "cpu",
    "AE_DEFAULT_MODEL": MODEL,
    "AE_TORCH_THREADS": "1",  # three replicas on two cores: one thread each
    "AE_ACCESS_LOG": "false",  # nginx logs every request
    "AE_MAX_BODY_BYTES": str(LIMIT),
    "AE_RELOAD_INTERVAL": str(RELOAD_INTERVAL),
    "AE_DRAIN_SECONDS": str(DRAIN_SECONDS),
}


@dataclass
class Cluster:
    replicas: list[balancer.Replica]
    lb: balancer.Nginx
    store: CheckpointStore


@contextmanager
def three_replicas_behind_nginx(workdir: Path) -> Iterator[Cluster]:
    """A store with one shipped model (version 1), three replicas serving it, nginx in front of them."""
    shutil.copytree(REPO / "checkpoints" / MODEL, workdir / "store" / MODEL)
    store = CheckpointStore(workdir / "store")
    with balancer.replicas(workdir / "replicas", store.root, 3, SETTINGS) as replicas:
        addresses = [replica.address for replica in replicas]
        with balancer.nginx(workdir / "nginx", addresses, LIMIT) as lb:
            yield Cluster(replicas, lb, store)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """For a test that stops a replica."""
    with three_replicas_behind_nginx(tmp_path) as fresh:
        yield fresh


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """For the tests that leave every replica running (starting three takes seconds on two cores)."""
    with three_replicas_behind_nginx(tmp_path_factory.mktemp("cluster")) as shared:
        yield shared


@dataclass
class Traffic:
    """Clients posting one image after another through nginx, over keep-alive connections, until stopped."""

    url: str
    outcomes: list[tuple[float, int | str]] = field(default_factory=list)  # (monotonic end, status or error)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self, clients: int) -> None:
        self.threads = [threading.Thread(target=self._post, daemon=True) for _ in range(clients)]
        for thread in self.threads:
            thread.start()

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)
        assert not any(thread.is_alive() for thread in self.threads), "a client is stuck"

    def _post(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30, trust_env=False) as client:
            for _ in range(100_000):  # bounded; the test stops it after seconds
                if self.stop.is_set():
                    return
                try:
                    result: int | str = client.post(f"/encode?model={MODEL}", content=IMAGE, headers=RAW).status_code
                except httpx.HTTPError as e:
                    result = type(e).__name__
                self.outcomes.append((time.monotonic(), result))

    def failures(self) -> list[tuple[float, int | str]]:
        return [outcome for outcome in self.outcomes if outcome[1] != 200]

    def count_after(self, moment: float) -> int:
        return sum(1 for ended, _ in self.outcomes if ended > moment)


def answered_by(entry: dict[str, str]) -> str:
    """The replica that answered a logged request: the last one nginx tried."""
    return entry["upstream"].split(", ")[-1]


def retried_past(entries: list[dict[str, str]], address: str) -> list[dict[str, str]]:
    """Logged requests that `address` failed, answered by another replica."""
    return [e for e in entries if address in e["upstream"].split(", ")[:-1]]


def test_a_replica_killed_under_load_costs_the_clients_nothing(cluster: Cluster) -> None:
    victim = cluster.replicas[0]
    traffic = Traffic(cluster.lb.url)
    traffic.start(clients=6)
    time.sleep(3)
    victim.process.kill()  # SIGKILL: no drain, its connections reset, then refused
    killed = time.monotonic()
    time.sleep(4)
    traffic.finish()
    assert traffic.count_after(killed + 1) > 20, "too little traffic after the kill to tell"
    assert traffic.failures() == [], f"{len(traffic.failures())} of {len(traffic.outcomes)} requests failed"
    log = cluster.lb.access_log(at_least=len(traffic.outcomes))
    served = {answered_by(entry) for entry in log}
    assert victim.address in served and len(served) == 3, "every replica took traffic before the kill"
    assert retried_past(log, victim.address), "nginx never met the killed replica: the kill proved nothing"
    assert victim.process.wait(10) == -signal.SIGKILL


def test_a_replica_stopped_with_sigterm_drains_without_a_failed_request(cluster: Cluster) -> None:
    leaving = cluster.replicas[0]
    traffic = Traffic(cluster.lb.url)
    traffic.start(clients=6)
    time.sleep(3)
    leaving.process.send_signal(signal.SIGTERM)
    stopped = time.time()  # wall clock, as nginx's log says when each request ended
    with httpx.Client(base_url=leaving.url, timeout=10, trust_env=False) as direct:
        time.sleep(0.3)
        assert direct.get("/readyz").status_code == 503  # not ready at once, yet still serving:
        during = direct.post(f"/encode?model={MODEL}", content=IMAGE, headers=RAW)
        assert during.status_code == 200 and during.headers["connection"] == "close"
    assert leaving.process.wait(DRAIN_SECONDS + 30) == 0
    exited = time.time()
    time.sleep(2)
    traffic.finish()
    assert exited - stopped >= DRAIN_SECONDS
    assert traffic.failures() == [], f"{len(traffic.failures())} of {len(traffic.outcomes)} requests failed"
    log = cluster.lb.access_log(at_least=len(traffic.outcomes))
    by_leaving = [float(entry["at"]) for entry in log if answered_by(entry) == cluster.replicas[0].address]
    assert [at for at in by_leaving if stopped < at < exited], "nginx sent it nothing while it drained"
    assert sum(1 for entry in log if float(entry["at"]) > exited) > 10, "too little traffic after the exit to tell"
    # nginx cannot see /readyz: it learns from refused connections once the drain is over, and retries those
    assert retried_past(log, leaving.address), "nginx never met the stopped replica"


def served_version(url: str) -> str:
    with httpx.Client(base_url=url, timeout=10, trust_env=False) as client:
        response = client.post(f"/encode?model={MODEL}", content=IMAGE, headers=RAW)
    assert response.status_code == 200, response.text
    return response.headers["x-model-version"]


def test_a_version_promoted_in_the_shared_store_is_served_by_every_replica_within_the_interval(
    shared_cluster: Cluster,
) -> None:
    cluster, store = shared_cluster, shared_cluster.store
    assert {served_version(replica.url) for replica in cluster.replicas} == {"1"}

    def copy_of_version_1(folder: Path) -> None:  # a new version, as ae-train would publish one
        for file in store.path(MODEL, 1).iterdir():
            shutil.copy(file, folder / file.name)

    published = time.monotonic()
    assert store.publish(MODEL, copy_of_version_1, promote=True) == 2
    waiting = {replica.url for replica in cluster.replicas}
    switched: dict[str, float] = {}
    deadline = published + RELOAD_INTERVAL + 15  # the interval, then loading and warming on a busy machine
    while waiting and time.monotonic() < deadline:
        for url in sorted(waiting):
            if served_version(url) == "2":  # each replica asked directly, not through nginx
                switched[url] = time.monotonic() - published
                waiting.discard(url)
        time.sleep(0.05)
    assert not waiting, f"still on version 1 after {deadline - published:.0f} s: {waiting}"
    assert max(switched.values()) <= RELOAD_INTERVAL + 15, switched
    before = len(cluster.lb.access_log())
    for _ in range(9):
        assert served_version(cluster.lb.url) == "2"
    assert {entry["version"] for entry in cluster.lb.access_log(at_least=before + 9)[before:]} == {"2"}


def test_nginx_and_the_replicas_agree_on_the_body_limit(shared_cluster: Cluster) -> None:
    cluster = shared_cluster
    images = LIMIT // 784
    before = len(cluster.lb.access_log())
    with httpx.Client(timeout=30, trust_env=False) as client:
        at_limit = client.post(f"{cluster.lb.url}/encode?model={MODEL}", content=IMAGE * images, headers=RAW)
        assert at_limit.status_code == 200 and len(at_limit.json()["latents"]) == images
        over = IMAGE * (images + 1)
        by_nginx = client.post(f"{cluster.lb.url}/encode?model={MODEL}", content=over, headers=RAW)
        by_replica = client.post(f"{cluster.replicas[0].url}/encode?model={MODEL}", content=over, headers=RAW)
    assert by_nginx.status_code == by_replica.status_code == 413
    logged = cluster.lb.access_log(at_least=before + 2)[before:]
    assert [entry["upstream"] != "-" for entry in logged] == [True, False]  # refused before any replica saw it
    nginx_error, replica_error = by_nginx.json()["error"], by_replica.json()["error"]
    assert nginx_error["code"] == replica_error["code"] and nginx_error["limit"] == replica_error["limit"] == LIMIT
