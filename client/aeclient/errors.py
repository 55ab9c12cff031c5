"""The service's one error shape, {"error": {"code", "message", ...}}, as typed exceptions.

Every error a call can raise is an `AEClientError`. A reply's error becomes the class its status
(and code) names, carrying what the body says a caller can act on: the index of the bad image,
the models or versions that exist, the limit exceeded, the seconds to wait.
"""

from __future__ import annotations

from typing import Any


class AEClientError(Exception):
    """Anything a call of the client can raise."""


class ConnectionFailed(AEClientError):
    """No reply: the service could not be reached, or the connection broke, on every attempt."""

    def __init__(self, message: str, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


class ServiceError(AEClientError):
    """An error reply. `status` is None for the same mistake caught before sending (InvalidInput)."""

    def __init__(self, message: str, status: int | None = None, code: str = "", details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.details = details or {}

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}" if self.status else self.message

    def _number(self, key: str) -> int | None:
        value = self.details.get(key)
        return value if isinstance(value, int) else None


class InvalidInput(ServiceError):
    """422 (or caught before sending): a bad image, latent vector or parameter; `index` names the item."""

    @property
    def index(self) -> int | None:
        """The position of the bad item in what was passed to the call (not in the request's chunk)."""
        return self._number("index")


class MalformedRequest(ServiceError):
    """400: a body the service could not parse (a client bug: please report it)."""


class Unauthorized(ServiceError):
    """401: the service wants an API key (`Authorization: Bearer <key>`), and this one is missing or wrong."""


class UnknownModel(ServiceError):
    """404: no such model; `available` lists the models served."""

    @property
    def available(self) -> list[str]:
        return list(self.details.get("available") or [])


class UnknownVersion(UnknownModel):
    """404: the model has no such version; `available_versions` lists those served."""

    @property
    def available_versions(self) -> list[int]:
        return list(self.details.get("available_versions") or [])


class NotAcceptable(ServiceError):
    """406: an output format the endpoint does not give."""


class TooLarge(ServiceError):
    """413: too many images or too large a body for one request; `limit` is the one exceeded."""

    @property
    def limit(self) -> int | None:
        return self._number("limit")


class UnsupportedMediaType(ServiceError):
    """415: a content type or content encoding the endpoint does not read."""


class Overloaded(ServiceError):
    """503 (or 429) after the retries: the model's queue is full, or the service is not ready or shutting down."""

    @property
    def retry_after(self) -> float | None:
        value = self.details.get("retry_after")
        return float(value) if isinstance(value, int | float) else None


class ServerError(ServiceError):
    """Any other 5xx: a fault in the service."""


_BY_STATUS: dict[int, type[ServiceError]] = {
    400: MalformedRequest,
    401: Unauthorized,
    404: UnknownModel,
    406: NotAcceptable,
    413: TooLarge,
    415: UnsupportedMediaType,
    422: InvalidInput,
    429: Overloaded,
    503: Overloaded,
}


def error_class(status: int, details: dict[str, Any]) -> type[ServiceError]:
    if status == 404 and "available_versions" in details:
        return UnknownVersion
    return _BY_STATUS.get(status, ServerError if status >= 500 else ServiceError)
