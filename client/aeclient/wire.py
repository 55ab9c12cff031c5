"""The wire, without I/O: a request to send (`Call`), a reply received (`Reply`), and what replies mean.

Both clients (sync.py, aio.py) send Calls and hand back Replies; everything else about the API,
its error shape, its headers and its bodies, is decided here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import numpy as np

from aeclient.errors import ServiceError, error_class

try:  # orjson, when installed (the service's own JSON library), is much faster on large arrays
    import orjson
except ImportError:  # pragma: no cover - the client alone does without it
    orjson = None  # type: ignore[assignment]

RAW = "application/octet-stream"
JSON = "application/json"
Version = int | str  # a number, "stable" or "latest"


@dataclass(frozen=True)
class Call:
    """One HTTP request: a multipart body when `files` is given, else `content` (or none)."""

    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None
    files: list[tuple[str, tuple[str, bytes, str]]] | None = None


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]  # as httpx gives them: case-insensitive
    content: bytes


@dataclass(frozen=True)
class Target:
    """Which model and version a call asks for; None: the service's default model, its `stable` version."""

    model: str | None = None
    version: Version | None = None

    def params(self) -> dict[str, str]:
        params = {"model": self.model} if self.model is not None else {}
        return params | ({"version": str(self.version)} if self.version is not None else {})

    def answered_by(self, reply: Reply) -> Target:
        """The model and version number that answered (X-Model, X-Model-Version): pinned for the rest of a job."""
        name, version = reply.headers.get("x-model"), reply.headers.get("x-model-version")
        if name is None or version is None or not version.isdigit():
            return self  # a service that does not say: ask the same way again
        return Target(name, int(version))


@dataclass(frozen=True)
class Limits:
    """What one request may carry, as the service states it (GET /models, "limits")."""

    max_images_per_request: int
    max_body_bytes: int


def dump_json(payload: dict[str, Any]) -> bytes:
    if orjson is not None:
        return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)
    plain = {key: value.tolist() if isinstance(value, np.ndarray) else value for key, value in payload.items()}
    return json.dumps(plain, separators=(",", ":")).encode()


def load_json(content: bytes) -> Any:
    return orjson.loads(content) if orjson is not None else json.loads(content)


def raise_for_error(reply: Reply, offset: int = 0) -> None:
    """An error reply as its typed exception; `offset`: where the request's first item sits in the call's input,
    so that an error's `index` names the item as the caller passed it."""
    if reply.status < 400:
        return
    try:
        error = load_json(reply.content)["error"]
        message, code = str(error["message"]), str(error["code"])
        details = {key: value for key, value in error.items() if key not in ("message", "code")}
    except (ValueError, KeyError, TypeError):
        message, code, details = reply.content[:200].decode(errors="replace") or "no body", "", {}
    if isinstance(details.get("index"), int) and offset:
        details["index"] += offset
        message = f"{message} (item {details['index']} of the call)"
    retry_after = parse_retry_after(reply.headers.get("retry-after"))
    if retry_after is not None:
        details["retry_after"] = retry_after
    raise error_class(reply.status, details)(message, reply.status, code, details)


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After, seconds or an HTTP date, as seconds from now (never negative); None if absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def json_body(reply: Reply, offset: int = 0) -> Any:
    raise_for_error(reply, offset)
    try:
        return load_json(reply.content)
    except ValueError:
        raise ServiceError(f"the service answered {reply.status} with a body that is not JSON", reply.status) from None


def raw_rows(reply: Reply, dtype: str, rows: int, offset: int = 0) -> np.ndarray:
    """A raw reply (X-Shape: N,D) -> (N, D) array; its row count checked against the request's."""
    raise_for_error(reply, offset)
    shape = reply.headers.get("x-shape", "")
    try:
        count, width = (int(part) for part in shape.split(","))
    except ValueError:
        raise ServiceError(f"a raw reply without a valid X-Shape header ({shape!r})", reply.status) from None
    if count != rows:
        raise ServiceError(f"the service answered {count} rows for {rows} items", reply.status)
    return np.frombuffer(reply.content, dtype=dtype).reshape(count, width)
