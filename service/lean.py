"""Lean routes: documented by FastAPI like any other route, served without its per-request machinery.

FastAPI's request handling (solving dependencies, wrapping the request and the response) cost
about 40 us per request here, more than a single image's forward pass and most of what a
one-image request costs beyond the HTTP server itself (bench/serving.py). The inference
endpoints are lean routes: the endpoint takes the request and one pydantic model of query
parameters, validated here into the same 422 as FastAPI's; errors it raises reach the app's
exception handlers as from any route. Signature and query model also give the OpenAPI docs.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, get_args, get_type_hints
from urllib.parse import parse_qsl

from fastapi.exceptions import HTTPException, RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

Endpoint = Callable[[Request, Any], Awaitable[Response]]


class LeanRoute(APIRoute):
    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        self.app = _serve(endpoint, _query_model(endpoint, path, bool(self.dependencies)))
        self.allowed = frozenset(self.methods or ())

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """What the router calls once the path matched: straight to the endpoint."""
        if scope["method"] not in self.allowed:
            raise HTTPException(status_code=405, headers={"Allow": ", ".join(sorted(self.allowed))})
        await self.app(scope, receive, send)


def _query_model(endpoint: Callable[..., Any], path: str, has_dependencies: bool) -> type[BaseModel]:
    """The endpoint's query model, from `(request: Request, query: Annotated[Model, Query()])`."""
    hints = get_type_hints(endpoint, include_extras=True)
    names = list(inspect.signature(endpoint).parameters)
    query = get_args(hints.get(names[1])) if len(names) == 2 else ()
    if has_dependencies or not query or hints.get(names[0]) is not Request or not issubclass(query[0], BaseModel):
        raise TypeError(f"lean route {path}: the endpoint must take (request: Request, query: Annotated[Model, "
                        "Query()]) and nothing else; dependencies would never run")  # fmt: skip
    model: type[BaseModel] = query[0]
    return model


def _serve(endpoint: Endpoint, query_model: type[BaseModel]) -> ASGIApp:
    defaults = query_model()  # shared by every request without a query string; endpoints only read it

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        query = _parse_query(query_model, scope["query_string"]) if scope["query_string"] else defaults
        response = await endpoint(Request(scope, receive, send), query)
        await response(scope, receive, send)

    return app


def _parse_query(query_model: type[BaseModel], query_string: bytes) -> BaseModel:
    """As FastAPI reads a query model: the last value of a repeated parameter, unknown ones ignored."""
    try:
        return query_model.model_validate(dict(parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)))
    except ValidationError as e:
        raise RequestValidationError([{**error, "loc": ("query", *error["loc"])} for error in e.errors()]) from None
