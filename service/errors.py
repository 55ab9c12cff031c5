"""The HTTP edge's errors, and the one JSON shape every error takes: {"error": {"code", "message", ...}}.

The inference core's errors (service.core.errors) become HTTP here, in `CORE_ERRORS`; the edge's
own (a body it cannot read, a format it cannot give, a missing key) carry their status themselves.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from service.core import CoreError, InvalidModelName, Overloaded, UndecodableLatents, UnknownModel, UnknownVersion


class ServiceError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, message: str, headers: dict[str, str] | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}
        self.details = details


class BadInput(ServiceError):
    status, code = 422, "invalid_input"


class MalformedBody(ServiceError):
    status, code = 400, "malformed_body"


class NotFound(ServiceError):
    status, code = 404, "not_found"


class PayloadTooLarge(ServiceError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(ServiceError):
    status, code = 415, "unsupported_media_type"


class NotAcceptable(ServiceError):
    status, code = 406, "not_acceptable"


class Unauthorized(ServiceError):
    status, code = 401, "unauthorized"


class NotReady(ServiceError):
    status, code = 503, "not_ready"


RETRY_AFTER = {"Retry-After": "1"}  # seconds: what an overloaded reply tells the client to wait


class Busy(ServiceError):
    """More work than the service queues: worth retrying shortly (with Retry-After), as a full model queue."""

    status, code = 503, "overloaded"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers=dict(RETRY_AFTER))


class ClientGone(ServiceError):
    """The client hung up; nobody reads the answer, but logs and metrics should not call it a 5xx."""

    status, code = 499, "client_closed_request"


# status, code and headers of each core error; the message and details are the error's own
CORE_ERRORS: dict[type[CoreError], tuple[int, str, dict[str, str]]] = {
    InvalidModelName: (422, "invalid_input", {}),
    UnknownModel: (404, "not_found", {}),
    UnknownVersion: (404, "not_found", {}),
    Overloaded: (503, Busy.code, RETRY_AFTER),
    UndecodableLatents: (422, "invalid_input", {}),
}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, **details: Any
) -> Response:
    body = orjson.dumps({"error": {"code": code, "message": message, **details}})
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(_request: Request, exc: ServiceError) -> Response:
        return error_response(exc.status, exc.code, exc.message, exc.headers, **exc.details)

    @app.exception_handler(ClientDisconnect)  # hung up while sending its body
    async def client_disconnect(_request: Request, _exc: ClientDisconnect) -> Response:
        return error_response(ClientGone.status, ClientGone.code, "client disconnected")

    @app.exception_handler(CoreError)
    async def core_error(_request: Request, exc: CoreError) -> Response:
        status, code, headers = CORE_ERRORS[type(exc)]
        return error_response(status, code, str(exc), headers, **exc.details)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> Response:
        problems = [{"where": ".".join(str(part) for part in e["loc"]), "message": e["msg"]} for e in exc.errors()]
        summary = "; ".join(f"{p['where']}: {p['message']}" for p in problems)
        return error_response(422, "invalid_input", summary, problems=problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))
