"""A real server stays responsive while hostile uploads are decoded and refused (service.budget).

Before the decode budget and the decode threads, four 48 KB base64 PNGs froze every client,
/healthz included, for 7 to 23 s; here /healthz, polled throughout, must answer each time within
HEALTHZ_LIMIT_S, and every hostile request must still get its own answer.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from liveserver import LiveServer, live_server

from bench.hostile import Attack, attacks

pytestmark = pytest.mark.slow  # a live server

HEALTHZ_LIMIT_S = 0.5
CODES = {413: "payload_too_large", 422: "invalid_input"}
COPIES = {"4 tall PNGs as base64": 4, "one tall PNG body": 4}  # sent at once; 2 of each other attack


class Poller(threading.Thread):
    """GET /healthz every 20 ms until stopped: each answer's status and latency."""

    def __init__(self, server: LiveServer) -> None:
        super().__init__(daemon=True)
        self.server, self.stopping = server, threading.Event()
        self.answers: list[tuple[int, float]] = []

    def run(self) -> None:
        with self.server.client(timeout=30) as client:
            while not self.stopping.is_set():
                started = time.perf_counter()
                try:
                    status = client.get("/healthz").status_code
                except httpx.HTTPError:
                    status = 0
                self.answers.append((status, time.perf_counter() - started))
                time.sleep(0.02)


def _send(server: LiveServer, attack: Attack) -> httpx.Response:
    with server.client(timeout=120) as client:
        return client.post(attack.path, content=attack.body, headers={"content-type": attack.content_type})


def test_healthz_answers_promptly_while_hostile_uploads_are_processed(tmp_path: Path, store_root: Path) -> None:
    hostile = attacks()
    jobs = [(name, attack) for name, attack in hostile.items() for _ in range(COPIES.get(name, 2))]
    with live_server(tmp_path, store_root, default_model="mlp2-p2") as server:
        poller = Poller(server)
        poller.start()
        time.sleep(0.5)
        quiet = len(poller.answers)
        with ThreadPoolExecutor(len(jobs)) as pool:
            responses = list(pool.map(lambda job: _send(server, job[1]), jobs))
        during = len(poller.answers) - quiet
        poller.stopping.set()
        poller.join(30)
        log = server.log()
    for (name, attack), response in zip(jobs, responses, strict=True):
        assert response.status_code == attack.status, f"{name}: {response.text[:300]}"
        if attack.status >= 400:
            error = response.json()["error"]
            assert error["code"] == CODES[attack.status] and ("image" in error["message"] or name == "29 MiB JSON body")
    assert during >= 5, f"only {during} /healthz answers while the attacks ran"
    assert all(status == 200 for status, _ in poller.answers), poller.answers
    slowest = max(latency for _, latency in poller.answers)
    assert slowest < HEALTHZ_LIMIT_S, f"/healthz took {slowest:.2f} s under attack"
    assert "Traceback" not in log, log[-3000:]
