"""deploy/nginx's configuration in real nginx (Debian's, as `make test` installs it), in front of fake replicas.

Fake replicas (a few lines of http.server on loopback) say exactly what nginx sent them and answer what a test
wants; the real service behind the same configuration is tests/deploy/test_replicas.py's. Nothing here is
slow: nginx starts in milliseconds.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from bench import balancer
from bench.launch import LOOPBACK, free_port

RAW = {"content-type": "application/octet-stream"}
LIMIT = 4096  # AE_MAX_BODY_BYTES for these tests


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeReplica:
    """A loopback HTTP server that records each request and answers `status` (200 by default)."""

    server: ThreadingHTTPServer
    seen: list[Seen] = field(default_factory=list)
    status: int = 200

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.server.server_address[1]}"


def _handler(replica: FakeReplica) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as nginx's upstream connections are

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            replica.seen.append(Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            answer = b'{"error": {"code": "overloaded"}}' if replica.status == 503 else b'{"version": 7}'
            self.send_response(replica.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.send_header("X-Model-Version", "7")
            if replica.status == 503:
                self.send_header("Retry-After", "1")
            self.end_headers()
            self.wfile.write(answer)

        do_GET = do_POST

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def replica() -> Iterator[FakeReplica]:
    fake = FakeReplica(ThreadingHTTPServer((LOOPBACK, 0), BaseHTTPRequestHandler))
    fake.server.RequestHandlerClass = _handler(fake)
    thread = threading.Thread(target=fake.server.serve_forever, daemon=True)
    thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()
    thread.join(5)


def dead() -> str:
    """A loopback address where nothing listens: connections are refused, as a killed replica's are."""
    return f"{LOOPBACK}:{free_port()}"


@pytest.fixture
def dying() -> Iterator[str]:
    """A replica killed in the middle of each request: it reads the request, then resets the connection."""
    listener = socket.create_server((LOOPBACK, 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            with connection:
                connection.recv(65536)
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST on close

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"{LOOPBACK}:{listener.getsockname()[1]}"
    stop.set()
    thread.join(5)
    listener.close()


def post(url: str, body: bytes = b"\0" * 784, headers: dict[str, str] | None = None) -> httpx.Response:
    with httpx.Client(timeout=10, trust_env=False) as client:
        return client.post(url + "/encode?model=mlp2-p2", content=body, headers=RAW | (headers or {}))


def test_the_configuration_passes_nginx_t(tmp_path: Path) -> None:
    balancer.render(tmp_path, f"{LOOPBACK}:{free_port()}", [dead(), dead(), dead()], LIMIT)
    checked = balancer.check_config(tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "max_fails=1 fail_timeout=5s" in (tmp_path / "ae-replicas.conf").read_text()  # compose's parameters


@pytest.mark.parametrize("failure", ["refused", "reset"])
def test_a_post_that_fails_on_one_replica_is_sent_to_the_next(
    tmp_path: Path, replica: FakeReplica, dying: str, failure: str
) -> None:
    down = dead() if failure == "refused" else dying
    with balancer.nginx(tmp_path, [down, replica.address], LIMIT) as lb:
        statuses = [post(lb.url).status_code for _ in range(4)]
        assert statuses == [200] * 4
        assert len(replica.seen) == 4  # each request answered once, none lost or doubled
        retried = [e for e in lb.access_log(at_least=4) if e["upstream"] == f"{down}, {replica.address}"]
        assert retried and retried[0]["upstream_status"] == "502, 200", lb.access_log()


def test_without_non_idempotent_nginx_would_not_resend_a_post_its_replica_dropped(
    tmp_path: Path, replica: FakeReplica, dying: str
) -> None:
    """Why the directive is there: nginx's default gives up on a POST once it was sent to a replica that failed."""
    template = balancer.TEMPLATE.read_text().replace(" non_idempotent;", ";")
    with balancer.nginx(tmp_path, [dying, replica.address], LIMIT, template=template) as lb:
        assert post(lb.url).status_code == 503
        assert not replica.seen


def test_with_every_replica_down_the_client_gets_a_503_in_the_service_error_shape(tmp_path: Path) -> None:
    with balancer.nginx(tmp_path, [dead(), dead()], LIMIT) as lb:
        response = post(lb.url)
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] == "unavailable"
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


def test_an_overloaded_replicas_503_reaches_the_client_and_is_not_retried(tmp_path: Path, replica: FakeReplica) -> None:
    replica.status = 503
    with balancer.nginx(tmp_path, [replica.address], LIMIT) as lb:
        response = post(lb.url)
        assert response.status_code == 503 and response.headers["retry-after"] == "1"
        assert response.json() == {"error": {"code": "overloaded"}}  # the replica's own answer
        assert len(replica.seen) == 1 and lb.access_log(at_least=1)[-1]["upstream"] == replica.address


def test_request_ids_are_made_or_kept_sent_to_the_replica_returned_and_logged(
    tmp_path: Path, replica: FakeReplica
) -> None:
    with balancer.nginx(tmp_path, [replica.address], LIMIT) as lb:
        made = post(lb.url).headers["x-request-id"]
        kept = post(lb.url, headers={"X-Request-ID": "client-42.a:b_c"}).headers["x-request-id"]
        replaced = post(lb.url, headers={"X-Request-ID": 'x" injected=1'}).headers["x-request-id"]
        log = lb.access_log(at_least=3)
    assert re.fullmatch(r"[0-9a-f]{32}", made) and kept == "client-42.a:b_c"
    assert re.fullmatch(r"[0-9a-f]{32}", replaced)  # not an ID: replaced, never logged as sent
    assert [seen.headers["x-request-id"] for seen in replica.seen] == [made, kept, replaced]
    assert [entry["request_id"] for entry in log] == [made, kept, replaced]
    assert all(entry["version"] == "7" for entry in log)  # the X-Model-Version that answered
    assert replica.seen[0].headers["x-forwarded-for"] == LOOPBACK


def test_bodies_over_the_services_limit_are_refused_by_nginx_in_the_services_shape(
    tmp_path: Path, replica: FakeReplica
) -> None:
    with balancer.nginx(tmp_path, [replica.address], LIMIT) as lb:
        assert post(lb.url, b"\0" * LIMIT).status_code == 200  # the limit itself passes, as in the service
        response = post(lb.url, b"\0" * (LIMIT + 1))
    assert response.status_code == 413 and len(replica.seen) == 1
    error = json.loads(response.content)["error"]
    assert error["code"] == "payload_too_large" and error["limit"] == LIMIT, error  # as service.errors says it
    assert response.headers["x-request-id"]
