"""The protocol's error replies: `{"error": "<message>"}`, with the status the REST API gives the same fault.

One exception to that: the REST API's 422 (a request it understood but cannot use) is the
protocol's 400. So a bad request is 400, an unknown model or version 404, a full queue 503 with
Retry-After, a body over the limit 413, a missing API key 401.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from service.core import CoreError
from service.errors import CORE_ERRORS, ClientGone, ServiceError

# what V2 routes answer in the protocol's shape; anything else is a server error, the app's to report
HANDLED = (ServiceError, CoreError, ClientDisconnect, HTTPException, RequestValidationError)


class BadRequest(ServiceError):
    """A request the protocol's rules, or this server's mapping of its models onto them, do not allow."""

    status, code = 400, "bad_request"


def error_body(message: str) -> bytes:
    return orjson.dumps({"error": message})


def error_response(exc: Exception) -> Response:
    """The protocol's reply to one of HANDLED."""
    headers: dict[str, str] = {}
    if isinstance(exc, CoreError):
        status, _, headers = CORE_ERRORS[type(exc)]
        message = _with_lists(str(exc), exc.details)
    elif isinstance(exc, ServiceError):
        status, message, headers = exc.status, exc.message, exc.headers
    elif isinstance(exc, ClientDisconnect):
        status, message = ClientGone.status, "client disconnected"
    elif isinstance(exc, HTTPException):
        status, message, headers = exc.status_code, str(exc.detail), dict(exc.headers or {})
    elif isinstance(exc, RequestValidationError):
        status = 400
        message = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    else:
        raise TypeError(f"not a protocol error: {exc!r}") from exc
    return Response(error_body(message), 400 if status == 422 else status, headers, media_type="application/json")


def _with_lists(message: str, details: dict[str, Any]) -> str:
    """The message, and what a client can choose from (available models or versions): the body has no other field."""
    lists = [f"{key.replace('_', ' ')}: {', '.join(map(str, value))}" for key, value in details.items()
             if isinstance(value, list)]  # fmt: skip
    return f"{message} ({'; '.join(lists)})" if lists else message
