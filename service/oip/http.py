"""What every V2 route shares: lean routes that answer errors in the protocol's shape, the model named by the path.

V2 routes are lean routes (service/lean.py) whose endpoints take no query parameters; those
with no path parameters take the lean lane like the REST inference routes, the inference routes
their own (`InferLane`), the others the router. The model and version come from the path, through
the same `resolve_model` as the REST API's (API key, catalogue, the metrics' model label,
X-Model and X-Model-Version).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable
from functools import lru_cache
from typing import Annotated, Any

from fastapi import Query, Request
from pydantic import BaseModel
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from service.core import ServedModel
from service.deps import check_api_key, resolve_model, settings_of
from service.errors import PayloadTooLarge, UnsupportedMediaType
from service.lean import LeanRoute, route_path
from service.oip.errors import HANDLED, BadRequest, error_response
from service.schemas import ModelQuery


class V2Route(LeanRoute):
    """A lean route whose errors are the protocol's: `{"error": "..."}`, with the status of service/oip/errors.py."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        names = re.findall(r"{(\w+)}", path)  # documented here: the endpoints read them from the request
        if names:
            kwargs["openapi_extra"] = {"parameters": [{"name": name, "in": "path", "required": True,
                                                       "schema": {"type": "string"}} for name in names]}  # fmt: skip
        super().__init__(path, endpoint, **kwargs)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().handle(scope, receive, send)
        except HANDLED as e:
            await error_response(e)(scope, receive, send)


class InferLane:
    """V2 inference requests straight to their route, past the router and the layers FastAPI puts around it.

    The lean lane (service/lean.py) shortcuts fixed paths only; the inference paths hold the model's
    name. Installed as the innermost of the app's own middleware (inside metrics and CORS), this hands
    a POST to .../infer matching one of `routes` (whose parameters are plain strings) to it as the
    router would, skipping the router's walk, the exception handlers (a V2 route answers its own
    errors) and the exit stack (lean routes have no dependencies): 8 of a one-image request's 87 us
    in-process (BENCHMARKS.md, "Open Inference Protocol"). Anything else passes on.
    """

    def __init__(self, app: ASGIApp, routes: list[V2Route]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"].endswith("/infer"):
            path = route_path(scope)
            for route in self.routes:
                found = route.path_regex.match(path)
                if found is not None:  # the parameters are strings: no conversion
                    scope.update(route=route, endpoint=route.endpoint, path_params=found.groupdict())
                    scope.setdefault("router", scope["app"].router)
                    await route.handle(scope, receive, send)
                    return
        await self.app(scope, receive, send)


class NoQuery(BaseModel):
    """V2 endpoints take no query parameters (any are ignored)."""


Params = Annotated[NoQuery, Query()]


def served_model(request: Request) -> ServedModel:
    """The model version the path names: /v2/models/{name}[/versions/{version}]; without a version, the stable one.

    The version is a path segment: a number, or the aliases `stable` and `latest`; anything else is
    a version the model does not have (404).
    """
    check_api_key(request, settings_of(request))  # as the REST inference routes' guard does, first
    return resolve_model(request, _query(request.path_params["name"], request.path_params.get("version")))


@lru_cache(maxsize=256)
def _query(name: str, version: str | None) -> ModelQuery:
    """The REST API's query for a model and version (cached: a pydantic model costs a few us a request)."""
    if version is not None and version.isascii() and version.isdigit():
        return ModelQuery.model_construct(model=name, version=int(version))
    return ModelQuery.model_construct(model=name, version=version)


def empty(status: int = 200) -> Response:
    """The health endpoints' answer: the status says it all (the spec asks for an empty body)."""
    return Response(status_code=status)


def decompressed(body: bytes, encoding: str | None, limit: int) -> bytes:
    """The body as sent (Content-Encoding gzip or deflate, as Triton's clients may send it), at most `limit` bytes."""
    if encoding is None or encoding.strip().lower() in ("", "identity"):
        return body
    wbits = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}.get(encoding.strip().lower())
    if wbits is None:
        raise UnsupportedMediaType(f"Content-Encoding {encoding!r} is not supported: send gzip, deflate or none")
    inflater = zlib.decompressobj(wbits)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as e:
        raise BadRequest(f"the body is not valid {encoding}: {e}") from None
    if len(data) > limit:
        raise PayloadTooLarge(f"body exceeds the limit of {limit} bytes once decompressed", limit=limit)
    if not inflater.eof:
        raise BadRequest(f"the {encoding} body is truncated")
    return data
