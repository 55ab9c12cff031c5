"""Lean routes: documented by FastAPI like any other route, served without its per-request machinery.

FastAPI's request handling (solving dependencies, wrapping the request and the response) costs
more than a single image's forward pass (BENCHMARKS.md, serving, step 2). The inference
endpoints are lean routes: the endpoint takes the request and one pydantic model of query
parameters, validated here into the same 422 as FastAPI's (after the route's `guard`, if any);
errors it raises reach the app's exception handlers as from any route. Signature and query model
also give the OpenAPI docs.

`LeanApp` also takes their requests past the router and the layers FastAPI wraps around every
app (`with_lean_lane`; step 10).

This module reads FastAPI internals: `FastAPI.build_middleware_stack` and the layers it adds,
`app.max_body_size`, the `telemetry=` argument, `app.user_middleware` entries as (class, args,
kwargs). Tested with FastAPI 0.165.0 (Starlette 1.10.0); releases without `telemetry=` or
`max_body_size` do not work. tests/service/test_lean.py fails if these assumptions break.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, get_args, get_type_hints
from urllib.parse import parse_qsl

from fastapi import FastAPI
from fastapi.exceptions import HTTPException, RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

Endpoint = Callable[[Request, Any], Awaitable[Response]]


class LeanRoute(APIRoute):
    def __init__(
        self, path: str, endpoint: Callable[..., Any], *, guard: Callable[[Request], None] | None = None, **kwargs: Any
    ) -> None:
        """`guard` is called with each request before its query is read, and raises to refuse it (credentials,
        say: a request without them then learns nothing from the query's validation). A router passes no
        such argument: a subclass of LeanRoute as its route class does."""
        super().__init__(path, endpoint, **kwargs)
        self.guard = guard
        self.app = _serve(endpoint, _query_model(endpoint, path, bool(self.dependencies)), guard)
        self.allowed = frozenset(self.methods or ())

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """What the router calls once the path matched: straight to the endpoint."""
        if scope["method"] not in self.allowed:
            raise HTTPException(status_code=405, headers={"Allow": ", ".join(sorted(_path_methods(scope, self)))})
        await self.app(scope, receive, send)


def _path_methods(scope: Scope, route: Route) -> set[str]:
    """The methods of every route at the request's path: a path may have a route per method (GET and POST
    /latent-map), and the router hands a wrong method to the first of them."""
    router = scope.get("router")
    routes = router.routes if router is not None else [route]
    return {method for other in routes if isinstance(other, Route) and other.matches(scope)[0] is not Match.NONE
            for method in other.methods or ()}  # fmt: skip


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


def _serve(endpoint: Endpoint, query_model: type[BaseModel], guard: Callable[[Request], None] | None) -> ASGIApp:
    defaults = query_model()  # shared by every request without a query string; endpoints only read it

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        if guard is not None:
            guard(request)
        query = _parse_query(query_model, scope["query_string"]) if scope["query_string"] else defaults
        response = await endpoint(request, query)
        await response(scope, receive, send)

    return app


def _parse_query(query_model: type[BaseModel], query_string: bytes) -> BaseModel:
    """As FastAPI reads a query model: the last value of a repeated parameter, unknown ones ignored."""
    try:
        return query_model.model_validate(dict(parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)))
    except ValidationError as e:
        raise RequestValidationError([{**error, "loc": ("query", *error["loc"])} for error in e.errors()]) from None


class LeanApp(FastAPI):
    """A FastAPI app whose lean routes' requests take a shortcut (`with_lean_lane`), without native telemetry.

    Metrics here are Prometheus's (/metrics). FastAPI's native OpenTelemetry, on by default, looks
    up the global providers on every request even when none is configured (step 3).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(telemetry={"tracing": False, "metrics": False, "logs": False}, **kwargs)

    def build_middleware_stack(self) -> ASGIApp:
        return with_lean_lane(self, super().build_middleware_stack())


def with_lean_lane(app: FastAPI, stack: ASGIApp) -> ASGIApp:
    """`stack` (the app's middleware and router) with a shortcut for requests to a lean route.

    A request whose method and path are a lean route's goes through the app's own middleware
    (metrics, CORS: the same classes, in the same order), its exception handlers and its server
    error handling, to the route; it skips only the router, which would find the same route by
    trying each in turn, and the layers that FastAPI adds around every app and the lean routes
    do not use: native telemetry's (off: LeanApp), the app-wide body limit (none; the routes
    enforce their own) and the exit stack that closes dependencies' files (lean routes have no
    dependencies). Every other request, and every request to an app with a body limit, takes
    `stack`.
    """
    if app.max_body_size is not None:
        return stack
    lean = {(method, route.path): route for route in app.router.routes if isinstance(route, LeanRoute)
            for method in route.allowed}  # fmt: skip
    server_error = None
    handlers = {}
    for key, handler in app.exception_handlers.items():  # split as FastAPI and Starlette do
        if key in (500, Exception):
            server_error = handler
        else:
            handlers[key] = handler

    async def to_route(scope: Scope, receive: Receive, send: Send) -> None:
        route = scope["route"]
        await route.handle(scope, receive, send)

    shortcut: ASGIApp = ExceptionMiddleware(to_route, handlers=handlers, debug=app.debug)
    for cls, args, kwargs in reversed(app.user_middleware):
        shortcut = cls(shortcut, *args, **kwargs)
    shortcut = ServerErrorMiddleware(shortcut, handler=server_error, debug=app.debug)

    async def lane(scope: Scope, receive: Receive, send: Send) -> None:
        route = lean.get((scope["method"], route_path(scope))) if scope["type"] == "http" else None
        if route is None:
            await stack(scope, receive, send)
            return
        scope.update(route=route, endpoint=route.endpoint, path_params={})  # as the router's match sets them
        scope.setdefault("router", app.router)
        await shortcut(scope, receive, send)

    return lane


def route_path(scope: Scope) -> str:
    """The path without the root path a proxy mounts the app under, as the router matches it."""
    path: str = scope["path"]
    root = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root + "/") else path
