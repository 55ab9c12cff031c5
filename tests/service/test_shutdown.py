"""Shutdown behind a load balancer: on SIGTERM not ready at once, still serving for the drain period, then
stopping without dropping a request that reached the server (service/draining.py).

The signal handling and readiness are checked in-process; the last test runs a real server under load.
"""

from __future__ import annotations

import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
import uvicorn
from fastapi.testclient import TestClient
from liveserver import LOOPBACK, STOP_DEADLINE, LiveServer, live_server

from service.app import create_app
from service.draining import CONNECTION_CLOSE, DrainingServer, refuse_new_connections
from service.settings import Settings

RAW = {"content-type": "application/octet-stream"}
DRAIN_SECONDS = 1.5


# ---------------------------------------------------------------------------- in-process


def test_readyz_says_not_ready_while_draining_and_requests_are_still_served(
    settings: Settings, digits: np.ndarray
) -> None:
    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").status_code == 200
        client.app.state.draining = True  # type: ignore[attr-defined]  # what the server does on SIGTERM
        ready = client.get("/readyz")
        assert ready.status_code == 503, ready.text
        assert ready.json()["error"]["code"] == "not_ready" and "draining" in ready.json()["error"]["message"]
        assert client.get("/healthz").status_code == 200  # alive: no restart wanted
        assert client.post("/encode", json={"images": [digits[0].tolist()]}).status_code == 200


def _server(settings: Settings, drain_seconds: float, drained: list[bool], started: bool = True) -> DrainingServer:
    config = uvicorn.Config(create_app(settings), log_level="warning")
    config.load()
    server = DrainingServer(config, drain_seconds, on_drain=lambda: drained.append(True))
    server.started = started  # as uvicorn sets it once the app has started and the listener is open
    return server


def test_the_first_signal_drains_the_second_stops_a_ctrl_c_then_forces(settings: Settings) -> None:
    drained: list[bool] = []
    server = _server(settings, 5, drained)
    signalled = time.monotonic()
    server.handle_exit(signal.SIGTERM, None)
    assert drained == [True] and not server.should_exit
    assert server.drain_ends is not None and 4.9 < server.drain_ends - signalled < 5.1
    # every response from now on says Connection: close, also once uvicorn refreshes its default headers
    assert CONNECTION_CLOSE in server.server_state.default_headers and CONNECTION_CLOSE in server.config.encoded_headers

    server.handle_exit(signal.SIGTERM, None)
    assert server.should_exit and not server.force_exit and drained == [True]
    server.handle_exit(signal.SIGINT, None)
    assert server.force_exit


@pytest.mark.parametrize(("drain_seconds", "started"), [(0, True), (5, False)], ids=["no drain", "still starting"])
def test_without_a_drain_period_a_signal_stops_at_once(settings: Settings, drain_seconds: float, started: bool) -> None:
    drained: list[bool] = []
    server = _server(settings, drain_seconds, drained, started)
    server.handle_exit(signal.SIGTERM, None)
    assert server.should_exit and drained == [True] and server.drain_ends is None  # not ready from now on
    assert CONNECTION_CLOSE not in server.server_state.default_headers


@pytest.mark.skipif(sys.platform != "linux", reason="a socket filter on the listener: Linux only")
def test_a_refusing_listener_drops_new_connections_and_keeps_the_established_ones() -> None:
    with socket.create_server((LOOPBACK, 0)) as listener:
        port = listener.getsockname()[1]
        with socket.create_connection((LOOPBACK, port), timeout=5) as early:  # established, waiting for accept()
            assert refuse_new_connections(listener)
            with pytest.raises(TimeoutError):  # its SYN dropped: no connection, the client retries
                socket.create_connection((LOOPBACK, port), timeout=0.3)
            accepted, _ = listener.accept()
            with accepted:
                early.sendall(b"ping")
                assert accepted.recv(4) == b"ping"
    with pytest.raises(ConnectionRefusedError):  # once the listener is closed, a client is refused
        socket.create_connection((LOOPBACK, port), timeout=5)


# ---------------------------------------------------------------------------- a real server under load


@dataclass(frozen=True)
class Outcome:
    """One request: when it started and ended (monotonic), its status, or `refused` (no connection) or `lost`."""

    started: float
    ended: float
    result: int | str
    closing: bool = False  # the response said "Connection: close"


class Traffic:
    """Client threads posting one image after another until the server refuses their connection."""

    def __init__(self, server: LiveServer, body: bytes) -> None:
        self.server, self.body = server, body
        self.outcomes: list[Outcome] = []
        self.readiness: list[Outcome] = []
        self.stop = threading.Event()  # only if a test fails: the threads end by themselves otherwise
        self.threads: list[threading.Thread] = []

    def client(self, keep_alive: bool) -> httpx.Client:
        limits = httpx.Limits() if keep_alive else httpx.Limits(max_keepalive_connections=0)
        return httpx.Client(base_url=self.server.url, timeout=10, trust_env=False, limits=limits)

    def start(self, new_connections: int, keep_alive: int) -> None:
        for keep in [False] * new_connections + [True] * keep_alive:
            self.threads.append(threading.Thread(target=self._post, args=(keep,), daemon=True))
        self.threads.append(threading.Thread(target=self._poll_readiness, daemon=True))
        for thread in self.threads:
            thread.start()

    def join(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self.stop.set()
        assert not any(thread.is_alive() for thread in self.threads), "clients still connected"

    def _post(self, keep_alive: bool) -> None:
        with self.client(keep_alive) as client:
            while not self.stop.is_set():
                outcome = _request(lambda: client.post("/encode?model=mlp2-p2", content=self.body, headers=RAW))
                self.outcomes.append(outcome)
                if outcome.result == "refused":
                    return

    def _poll_readiness(self) -> None:
        with self.client(keep_alive=False) as client:
            while not self.stop.is_set():
                outcome = _request(lambda: client.get("/readyz"))
                self.readiness.append(outcome)
                if outcome.result == "refused":
                    return
                time.sleep(0.02)


def _request(send: object) -> Outcome:
    """Refused: the server was not listening, nothing reached it. Lost: a connection that was established (or a
    request that was sent) and closed without an answer."""
    started = time.monotonic()
    try:
        response: httpx.Response = send()  # type: ignore[operator]
    except httpx.ConnectError:
        return Outcome(started, time.monotonic(), "refused")
    except httpx.TransportError as e:  # reset, closed without a response, timed out
        return Outcome(started, time.monotonic(), f"lost: {e!r}")
    closing = response.headers.get("connection", "").lower() == "close"
    return Outcome(started, time.monotonic(), response.status_code, closing)


@pytest.mark.slow
def test_sigterm_drains_then_stops_without_losing_a_request(
    tmp_path: Path, store_root: Path, digits: np.ndarray
) -> None:
    body = np.rint(digits[0] * 255).astype(np.uint8).tobytes()
    settings = {"default_model": "mlp2-p2", "drain_seconds": DRAIN_SECONDS, "access_log": False}
    with live_server(tmp_path, store_root, **settings) as live:
        traffic = Traffic(live, body)
        traffic.start(new_connections=6, keep_alive=1)
        time.sleep(1.0)  # traffic under way
        live.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        traffic.join(15)
        code = live.process.wait(STOP_DEADLINE)
        log = live.log()

    outcomes, readiness = traffic.outcomes, traffic.readiness
    lost = [outcome for outcome in outcomes + readiness if str(outcome.result).startswith("lost")]
    assert not lost, f"{len(lost)} of {len(outcomes)} requests lost: {lost[:5]}\n{log}"
    answered = [outcome for outcome in outcomes if outcome.result != "refused"]
    assert {outcome.result for outcome in answered} == {200}, log
    assert len(outcomes) - len(answered) == 7  # each client's last connection, refused: the listener had closed

    # not ready at once, until the listener closed
    before = [outcome.result for outcome in readiness if outcome.ended < signalled]
    assert before and set(before) == {200}, readiness
    turned = min(outcome.ended for outcome in readiness if outcome.result == 503)
    assert turned - signalled < 0.25, f"/readyz said 503 {turned - signalled:.2f} s after SIGTERM"
    assert {outcome.result for outcome in readiness if outcome.started > turned} <= {503, "refused"}

    # answering, on new connections too, for the whole drain period; every answer then says Connection: close
    during = [outcome for outcome in answered if signalled + 0.1 < outcome.started]
    assert max(outcome.started for outcome in during) > signalled + DRAIN_SECONDS - 0.1, "stopped early"
    assert all(outcome.closing for outcome in during), "keep-alive connections kept open while draining"
    assert not any(outcome.closing for outcome in answered if outcome.ended < signalled)
    first_refused = min(outcome.started for outcome in outcomes if outcome.result == "refused")
    assert first_refused > signalled + DRAIN_SECONDS - 0.1, f"refused {first_refused - signalled:.2f} s after SIGTERM"

    assert code == 0, log
    draining, stopping, finished = (
        log.find(line) for line in ("Draining for", "Shutting down", f"Finished server process [{live.process.pid}]")
    )
    assert 0 <= draining < stopping < finished, log
    assert "Traceback" not in log, log
