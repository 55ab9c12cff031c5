"""A corpus of hostile requests, sent as raw bytes to a live server, each with the status it must get.

Every request here is one a careless or malicious client could send: bodies nested, huge, of
the wrong type or encoding, truncated, compressed, mislabelled; images that are not images;
parameters out of range; paths that try to climb out; HTTP that is not quite HTTP; requests for
versions the store could not load. Each gets a 4xx in the service's one JSON error shape (or a
2xx where the request is in fact valid), never a 5xx; a few are refused by the HTTP server itself
before the app sees them (`BY_SERVER`). Sent over a socket, so that nothing on the way (a client
library) tidies them up.

Not here: decompression bombs within the pixel limit and very large images (budgets per request,
tested with that work), and the store faults' reasons in detail (test_store_faults.py).
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import shutil
import socket
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from liveserver import LOOPBACK, LiveServer, live_server
from PIL import Image
from pngs import encode_png

from models.checkpoint import METADATA
from service.schemas import ErrorResponse

pytestmark = pytest.mark.slow  # a live server

KEY = "hostile-key"
MAX_BODY = 256 * 1024  # the server's AE_MAX_BODY_BYTES here: small, so that a large body is cheap to send
MAX_IMAGES = 8
BY_SERVER = "server"  # the HTTP server (uvicorn) refuses the request before the app sees it: not our JSON


def request(
    method: str, target: str, body: bytes = b"", *headers: str, auth: bool = True, length: bool = True
) -> bytes:
    """The bytes of one HTTP/1.1 request, sent as they are."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {LOOPBACK}", "Connection: close"]
    lines += [f"Authorization: Bearer {KEY}"] if auth else []
    lines += [f"Content-Length: {len(body)}"] if length else []
    return "\r\n".join([*lines, *headers, "", ""]).encode("latin-1") + body


def post(target: str, body: bytes, content_type: str = "application/json", *headers: str) -> bytes:
    return request("POST", target, body, f"Content-Type: {content_type}", *headers)


def get(target: str, *headers: str, auth: bool = True) -> bytes:
    return request("GET", target, b"", *headers, auth=auth)


def png(size: tuple[int, int] = (28, 28), mode: str = "L") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, "PNG")
    return buffer.getvalue()


def with_ihdr(size: tuple[int, int]) -> bytes:
    """A PNG whose header claims `size` (CRC intact) over a tiny image's data: a bomb by its header."""
    data = bytearray(png())
    ihdr = b"IHDR" + struct.pack(">II", *size) + bytes(data[24:29])
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(ihdr))
    return bytes(data)


def multipart(*parts: tuple[str, bytes], boundary: str = "hostile") -> bytes:
    chunks = [f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
              f"Content-Type: image/png\r\n\r\n".encode() + data + b"\r\n" for name, data in parts]  # fmt: skip
    return b"".join(chunks) + f"--{boundary}--\r\n".encode()


def images(*rows: list[Any]) -> bytes:
    return orjson.dumps({"images": list(rows)})


ZERO = [0.0] * 784
GOOD = images(ZERO)
DIGIT = encode_png(np.zeros(784, np.float32))
BAD_CRC = DIGIT[:29] + bytes(b ^ 0xFF for b in DIGIT[29:33]) + DIGIT[33:]
RAW = "application/octet-stream"
MULTIPART = "multipart/form-data; boundary=hostile"

JSON = "Content-Type: application/json"
NESTED = b'{"images": ' + b"[" * 200 + b"0" + b"]" * 200 + b"}"
HUGE_INTEGERS = b'{"images": [[' + b",".join([b"9" * 30] * 784) + b"]]}"
REPEATED_KEY = b'{"images": "x", "images": [[' + b"0," * 783 + b"0]]}"
ESCAPED_KEY = b'{"\\u0069mages": [[' + b"0," * 783 + b"0]]}"
CHUNKED = f"{len(GOOD):x}\r\n".encode() + GOOD + b"\r\n0\r\n\r\n"
BAD_CHUNK = b"zz\r\n" + GOOD + b"\r\n0\r\n\r\n"
TOO_MANY_FILES = multipart(*[(f"{i}.png", DIGIT) for i in range(MAX_IMAGES + 1)])

# (name, request, status, error code: None for a 2xx, BY_SERVER for the HTTP server's own refusal)
# fmt: off
CORPUS: list[tuple[str, bytes, int, str | None]] = [
    # JSON nested, huge, of the wrong type
    ("nested 100000 deep", post("/encode", b"[" * 100_000 + b"]" * 100_000), 400, "malformed_body"),
    ("nested 200 deep in images", post("/encode", NESTED), 422, "invalid_input"),
    ("an image 28x28x1", post("/encode", images([[0.0]] * 28 * 28)), 422, "invalid_input"),
    ("1e999", post("/encode", b'{"images": [[1e999]]}'), 400, "malformed_body"),
    ("1e308 pixels", post("/encode", images([1e308] * 784)), 422, "invalid_input"),
    ("30-digit integers", post("/encode", HUGE_INTEGERS), 422, "invalid_input"),
    ("1e300 latents", post("/decode", b'{"latents": [[1e300, 0]]}'), 422, "invalid_input"),
    ("images a string", post("/encode", b'{"images": "0000"}'), 422, "invalid_input"),
    ("images an object", post("/encode", b'{"images": {"0": 0}}'), 422, "invalid_input"),
    ("images of booleans", post("/encode", orjson.dumps({"images": [[True] * 784]})), 422, "invalid_input"),
    ("images of nulls", post("/encode", orjson.dumps({"images": [[None] * 784]})), 422, "invalid_input"),
    ("images_png of numbers", post("/encode", b'{"images_png": [1]}'), 422, "invalid_input"),
    ("latents a string", post("/decode", b'{"latents": "00"}'), 422, "invalid_input"),
    ("a JSON array", post("/encode", b"[[0]]"), 422, "invalid_input"),
    ("a JSON string", post("/encode", b'"images"'), 422, "invalid_input"),
    ("JSON null", post("/encode", b"null"), 422, "invalid_input"),
    ("an empty object", post("/encode", b"{}"), 422, "invalid_input"),
    ("a repeated key, the last valid", post("/encode", REPEATED_KEY), 200, None),
    # literals JSON does not have
    ("NaN", post("/encode", b'{"images": [[NaN]]}'), 400, "malformed_body"),
    ("Infinity", post("/decode", b'{"latents": [[Infinity, 0]]}'), 400, "malformed_body"),
    ("-Infinity", post("/decode", b'{"latents": [[-Infinity, 0]]}'), 400, "malformed_body"),
    # encodings
    ("an escaped key", post("/encode", ESCAPED_KEY), 200, None),
    ("a lone surrogate", post("/encode", b'{"images": "\\ud800"}'), 400, "malformed_body"),
    ("invalid UTF-8", post("/encode", b'{"images": "\xff\xfe"}'), 400, "malformed_body"),
    ("a byte order mark", post("/encode", b"\xef\xbb\xbf" + GOOD), 400, "malformed_body"),
    ("UTF-16", post("/encode", GOOD.decode().encode("utf-16")), 400, "malformed_body"),
    ("a NUL in the body", post("/encode", GOOD[:-1] + b"\0}"), 400, "malformed_body"),
    # truncations
    ("JSON cut short", post("/encode", GOOD[: len(GOOD) // 2]), 400, "malformed_body"),
    ("an empty JSON body", post("/encode", b""), 400, "malformed_body"),
    ("raw pixels one byte short", post("/encode", bytes(783), RAW), 422, "invalid_input"),
    ("raw latents one byte short", post("/decode", bytes(7), RAW), 422, "invalid_input"),
    ("a PNG cut short", post("/encode", DIGIT[:40], "image/png"), 422, "invalid_input"),
    ("multipart cut short", post("/encode", multipart(("a.png", DIGIT))[:80], MULTIPART), 400, "malformed_body"),
    # content types
    ("text/plain", post("/encode", GOOD, "text/plain"), 415, "unsupported_media_type"),
    ("no content type", request("POST", "/encode", GOOD), 415, "unsupported_media_type"),
    ("two types in one header", post("/encode", GOOD, "application/json, text/plain"), 415,
     "unsupported_media_type"),
    ("a bare parameter", post("/encode", GOOD, ";charset=utf-8"), 415, "unsupported_media_type"),
    ("JSON with a foreign charset", post("/encode", GOOD, "application/json; charset=latin-1"), 200, None),
    ("upper-case JSON", post("/encode", GOOD, "APPLICATION/JSON"), 200, None),
    ("two Content-Type headers, the first counts", post("/encode", GOOD, "text/plain", JSON), 415,
     "unsupported_media_type"),
    ("JSON labelled as raw pixels", post("/encode", GOOD, RAW), 422, "invalid_input"),
    ("a PNG labelled as JSON", post("/encode", DIGIT), 400, "malformed_body"),
    ("a PNG labelled as JPEG", post("/encode", DIGIT, "image/jpeg"), 200, None),
    ("a PNG to /decode", post("/decode", DIGIT, "image/png"), 415, "unsupported_media_type"),
    ("multipart without a boundary", post("/encode", multipart(("a.png", DIGIT)), "multipart/form-data"), 400,
     "malformed_body"),
    ("multipart with another boundary", post("/encode", multipart(("a.png", DIGIT)), "multipart/form-data; boundary=x"),
     400, "malformed_body"),
    ("multipart of garbage", post("/encode", b"\0" * 100, MULTIPART), 400, "malformed_body"),
    ("multipart of a text file", post("/encode", multipart(("notes.txt", b"hello")), MULTIPART), 422, "invalid_input"),
    # images that are not (quite) images
    ("a zero-byte PNG", post("/encode", b"", "image/png"), 422, "invalid_input"),
    ("a PNG with a wrong CRC", post("/encode", BAD_CRC, "image/png"), 422, "invalid_input"),
    ("bytes that are no image", post("/encode", b"this is not an image", "image/png"), 422, "invalid_input"),
    ("a PNG signature alone", post("/encode", DIGIT[:8], "image/png"), 422, "invalid_input"),
    ("a PNG of zero width", post("/encode", with_ihdr((0, 28)), "image/png"), 422, "invalid_input"),
    ("a PNG claiming 100000 x 100000 pixels", post("/encode", with_ihdr((100_000, 100_000)), "image/png"), 422,
     "invalid_input"),
    ("base64 of no image", post("/encode", orjson.dumps({"images_png": [base64.b64encode(b"nope").decode()]})), 422,
     "invalid_input"),
    ("base64 that is not", post("/encode", b'{"images_png": ["%%%%"]}'), 422, "invalid_input"),
    ("a transparent RGBA PNG", post("/encode", png(mode="RGBA"), "image/png"), 200, None),
    ("a 16-bit greyscale PNG", post("/encode", png(mode="I;16"), "image/png"), 200, None),
    ("a 1x1 PNG", post("/encode", png((1, 1)), "image/png"), 200, None),
    # content encodings the service does not read
    ("gzip, gzipped", post("/encode", gzip.compress(GOOD), "application/json", "Content-Encoding: gzip"), 415,
     "unsupported_media_type"),
    ("gzip claimed, raw pixels", post("/encode", bytes(784), RAW, "Content-Encoding: gzip"), 415,
     "unsupported_media_type"),
    ("br claimed", post("/decode", b'{"latents": [[0, 0]]}', "application/json", "Content-Encoding: br"), 415,
     "unsupported_media_type"),
    ("identity", post("/encode", GOOD, "application/json", "Content-Encoding: identity"), 200, None),
    # sizes
    # refused by its Content-Length, before a byte of it is read: sent without it (a client sending it all
    # would see the connection reset, the server having closed it with the rest unread)
    ("a body over the limit", request("POST", "/encode", b"", f"Content-Type: {RAW}", f"Content-Length: {MAX_BODY + 1}",
                                      length=False), 413, "payload_too_large"),
    ("raw pixels of more images than the limit", post("/encode", bytes(784 * (MAX_IMAGES + 1)), RAW), 413,
     "payload_too_large"),
    ("more images than the limit", post("/encode", images(*[ZERO] * (MAX_IMAGES + 1))), 413, "payload_too_large"),
    ("more files than the limit", post("/encode", TOO_MANY_FILES, MULTIPART), 413, "payload_too_large"),
    ("no images", post("/encode", b'{"images": []}'), 422, "invalid_input"),
    ("an empty raw body", post("/encode", b"", RAW), 422, "invalid_input"),
    ("a long URL", post("/encode?" + "x=1&" * 2000, GOOD), 200, None),
    # parameters: more in QUERIES
    ("limit 0", get("/latent-map?limit=0"), 422, "invalid_input"),
    ("limit 10001", get("/latent-map?limit=10001"), 422, "invalid_input"),
    # paths that try to climb out
    ("/demo/../app.py", get("/demo/../app.py"), 404, "not_found"),
    ("/demo/..%2fapp.py", get("/demo/..%2fapp.py"), 404, "not_found"),
    ("/demo/%2e%2e", get("/demo/%2e%2e"), 404, "not_found"),
    ("/demo/index.html", get("/demo/index.html"), 404, "not_found"),
    ("/docs/assets/..%2f..%2fsettings.py", get("/docs/assets/..%2f..%2fsettings.py"), 404, "not_found"),
    ("/models/%2e%2e", get("/models/%2e%2e"), 422, "invalid_input"),
    ("/models/..%2f..%2fetc%2fpasswd", get("/models/..%2f..%2fetc%2fpasswd"), 404, "not_found"),
    ("/models/mlp2-p2%00", get("/models/mlp2-p2%00"), 422, "invalid_input"),
    ("/models/ a name of 5000", get("/models/" + "a" * 5000), 422, "invalid_input"),
    # methods
    ("PUT /latent-map", request("PUT", "/latent-map"), 405, "method_not_allowed"),
    ("DELETE /encode", request("DELETE", "/encode"), 405, "method_not_allowed"),
    ("GET /decode", get("/decode"), 405, "method_not_allowed"),
    ("POST /models", post("/models", b"{}"), 405, "method_not_allowed"),
    # credentials
    ("no key", request("POST", "/encode", GOOD, "Content-Type: application/json", auth=False), 401, "unauthorized"),
    ("no key, a bad query", request("POST", "/encode?version=0", GOOD, auth=False), 401, "unauthorized"),
    ("a Basic key", request("GET", "/models", b"", f"Authorization: Basic {KEY}", auth=False), 401, "unauthorized"),
    ("Bearer and nothing", request("GET", "/metrics", b"", "Authorization: Bearer", auth=False), 401, "unauthorized"),
    ("a key of Latin-1 bytes", request("GET", "/models", b"", "Authorization: Bearer cl\xe9", auth=False), 401,
     "unauthorized"),
    # HTTP that is not quite HTTP
    ("a Content-Length that is no number", request("POST", "/encode", GOOD, JSON, "Content-Length: x", length=False),
     400, BY_SERVER),
    ("two different Content-Lengths", request("POST", "/encode", GOOD, JSON, "Content-Length: 3"), 400, BY_SERVER),
    ("a chunked body", request("POST", "/encode", CHUNKED, JSON, "Transfer-Encoding: chunked", length=False), 200,
     None),
    ("a bad chunk size", request("POST", "/encode", BAD_CHUNK, JSON, "Transfer-Encoding: chunked", length=False), 400,
     BY_SERVER),
    ("a header without a colon", get("/models", "Broken header"), 400, BY_SERVER),
    ("a request line of garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400, BY_SERVER),
    ("Expect: 100-continue", post("/encode", GOOD, "application/json", "Expect: 100-continue"), 200, None),
    # versions the store could not load (made by the `server` fixture)
    ("a model whose only version is broken", post("/encode?model=mlp1-p2", GOOD), 404, "not_found"),
    ("a version with broken metadata", post("/encode?model=mlp2-p2&version=3", GOOD), 404, "not_found"),
    ("a version that leads out of the store", post("/encode?model=mlp2-p8&version=2", GOOD), 404, "not_found"),
    ("the broken model's details", get("/models/mlp1-p2"), 404, "not_found"),
]
# query strings of /encode with a valid body, each with its status
QUERIES = {
    "version=-1": 422, "version=0": 422, "version=" + "9" * 30: 404, "version=abc": 422, "version=1e3": 422,
    "version=1.5": 422, "version=": 422, "version=%EF%BC%91": 422,  # a full-width 1
    "model=": 422, "model=../mlp2-p2": 422, "model=%2e%2e%2fmlp2-p2": 422, "model=MLP2-P2": 422,
    "model=mlp2-p2%00": 422, "model=" + "a" * 65: 422, "model=mlp9-p9": 404, "model=%zz&version=%": 422,
    "format=gif": 406, "format=": 406, "format=png": 406,
}
# fmt: on
CODES = {404: "not_found", 406: "not_acceptable", 422: "invalid_input"}
CORPUS += [(f"?{query}", post(f"/encode?{query}", GOOD), status, CODES[status]) for query, status in QUERIES.items()]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, store_root: Path) -> Iterator[LiveServer]:
    """A server over a copy of the test store with faults (mlp1-p2's only version is already truncated)."""
    root = tmp_path_factory.mktemp("hostile")
    store = root / "store"
    shutil.copytree(store_root, store)
    shutil.copytree(store / "mlp2-p2" / "1", store / "mlp2-p2" / "3")
    (store / "mlp2-p2" / "3" / METADATA).write_text("{")
    shutil.copytree(store / "mlp2-p8" / "1", root / "outside")
    (store / "mlp2-p8" / "2").symlink_to(root / "outside", target_is_directory=True)
    settings = {"default_model": "mlp2-p2", "api_key": KEY, "max_body_bytes": MAX_BODY,
                "max_images_per_request": MAX_IMAGES, "access_log": "false"}  # fmt: skip
    with live_server(root / "work", store, **settings) as live:
        yield live


def exchange(server: LiveServer, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send `raw`, read the reply until the server closes: (status, headers, body)."""
    with socket.create_connection((LOOPBACK, server.port), timeout=30) as connection:
        connection.sendall(raw)
        reply = b""
        while chunk := connection.recv(65536):
            reply += chunk
    return _parse(reply)


def _parse(reply: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = reply.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split(" ")[1])
    if status == 100:  # Expect: 100-continue's interim reply; the real one follows
        return _parse(body)
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
    return status, headers, body


@pytest.mark.parametrize(("name", "raw", "status", "code"), CORPUS, ids=[case[0] for case in CORPUS])
def test_a_hostile_request_gets_its_status(
    server: LiveServer, name: str, raw: bytes, status: int, code: str | None
) -> None:
    got, headers, body = exchange(server, raw)
    assert got == status, (name, got, body[:300])
    if code == BY_SERVER:
        return
    assert headers["content-type"].startswith("application/json") or got < 300, headers
    if code is not None:
        error = ErrorResponse.model_validate_json(body)  # the one shape, extra fields forbidden
        assert error.error.code == code, body
    else:
        assert json.loads(body)["model"] == "mlp2-p2"


def test_a_body_cut_off_by_a_hang_up_gets_no_reply_and_harms_nothing(server: LiveServer) -> None:
    """The client promises 1000 bytes, sends 10 and closes: nobody is left to answer, and the server serves on."""
    with socket.create_connection((LOOPBACK, server.port), timeout=30) as connection:
        connection.sendall(request("POST", "/encode", b"", "Content-Type: application/json", "Content-Length: 1000",
                                   length=False) + GOOD[:10])  # fmt: skip
    assert exchange(server, post("/encode", GOOD))[0] == 200
    assert exchange(server, get("/readyz"))[0] == 200


def test_the_faults_are_reported_by_their_place_in_the_store_only(server: LiveServer, tmp_path: Path) -> None:
    status, _, body = exchange(server, get("/readyz", auth=False))
    assert status == 200
    ready = json.loads(body)
    assert set(ready) == {"status", "versions", "skipped"}
    assert set(ready["skipped"]) == {"mlp1-p2/1", "mlp2-p2/3", "mlp2-p8/2"}
    for reason in ready["skipped"].values():
        assert not reason.startswith("/") and str(tmp_path.parent) not in reason, reason
