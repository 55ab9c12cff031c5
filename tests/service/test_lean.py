"""Lean routes: the endpoint gets the request and its validated query model, nothing FastAPI would inject.

LeanApp takes their requests past the router and FastAPI's own layers, with the app's middleware and handlers.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated, ClassVar

import numpy as np
import pytest
from fastapi import Depends, FastAPI, Query, Request
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field
from starlette.middleware import Middleware
from starlette.responses import JSONResponse, Response
from starlette.routing import Router
from starlette.types import ASGIApp, Receive, Scope, Send

from service.app import create_app
from service.errors import NotFound, install_error_handlers
from service.lean import LeanApp, LeanRoute
from service.settings import Settings


class Paging(BaseModel):
    page: int = Field(default=1, ge=1)


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    async def page(request: Request, query: Annotated[Paging, Query()]) -> Response:
        return JSONResponse({"page": query.page, "path": request.url.path})

    app.router.routes.append(LeanRoute("/page", page, methods=["POST"]))
    return app


def test_the_query_is_validated_into_the_services_422_and_unknown_parameters_are_ignored() -> None:
    with TestClient(_app()) as client:
        assert client.post("/page?page=3&other=x").json() == {"page": 3, "path": "/page"}
        assert client.post("/page").json()["page"] == 1
        bad = client.post("/page?page=0")
        assert bad.status_code == 422
        assert bad.json()["error"]["problems"][0]["where"] == "query.page"
        wrong = client.get("/page")
        assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"


def test_an_endpoint_that_expects_more_than_the_request_and_a_query_model_is_refused() -> None:
    async def needs(x: Annotated[int, Depends(lambda: 1)]) -> Response:
        return Response()

    async def extra(request: Request, query: Annotated[Paging, Query()], more: int) -> Response:
        return Response()

    async def plain(request: Request, page: int) -> Response:
        return Response()

    async def nothing() -> Response:
        return Response()

    async def fine(request: Request, query: Annotated[Paging, Query()]) -> Response:
        return Response()

    for endpoint in (needs, extra, plain, nothing):
        with pytest.raises(TypeError, match="dependencies would never run"):
            LeanRoute("/x", endpoint, methods=["POST"])
    LeanRoute("/x", fine, methods=["POST"])
    with pytest.raises(TypeError, match="dependencies would never run"):
        LeanRoute("/x", fine, methods=["POST"], dependencies=[Depends(lambda: 1)])


class Recorder:
    """User middleware: what each request's scope held once the app answered, and the status sent."""

    seen: ClassVar[list[tuple[str, bool, str, int]]] = []

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        status = 500

        async def send_status(message: dict) -> None:  # type: ignore[type-arg]
            nonlocal status
            status = message.get("status", status)
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            if scope["type"] == "http":
                # FastAPI's exit-stack layer, inside the user middleware, leaves its mark on the scope
                full_stack = "fastapi_middleware_astack" in scope
                self.seen.append((scope["path"], full_stack, getattr(scope.get("route"), "path", ""), status))


def _lean_app(**kwargs: object) -> LeanApp:
    app = LeanApp(**kwargs)
    install_error_handlers(app)
    app.add_middleware(Recorder)

    async def page(request: Request, query: Annotated[Paging, Query()]) -> Response:
        if query.page == 404:
            raise NotFound("no such page")
        if query.page == 500:
            raise RuntimeError("a bug")
        return JSONResponse({"page": query.page, "path": request.url.path})

    @app.get("/plain")
    async def plain() -> dict[str, str]:
        return {"ok": "yes"}

    app.router.routes.append(LeanRoute("/page", page, methods=["POST"]))
    return app


def test_a_lean_route_s_requests_skip_the_router_but_keep_the_apps_middleware_and_error_handlers() -> None:
    Recorder.seen = []
    with TestClient(_lean_app(), raise_server_exceptions=False) as client:
        assert client.post("/page?page=2").json() == {"page": 2, "path": "/page"}
        assert client.post("/page?page=0").json()["error"]["problems"][0]["where"] == "query.page"
        assert client.post("/page?page=404").json()["error"] == {"code": "not_found", "message": "no such page"}
        assert client.post("/page?page=500").status_code == 500
        assert client.get("/plain").json() == {"ok": "yes"}
        wrong = client.get("/page")  # no lean route for GET: the router answers, in the service's error shape
        assert (wrong.status_code, wrong.json()["error"]["code"]) == (405, "method_not_allowed")
    assert Recorder.seen == [
        ("/page", False, "/page", 200),
        ("/page", False, "/page", 422),
        ("/page", False, "/page", 404),
        ("/page", False, "/page", 500),
        ("/plain", True, "/plain", 200),
        ("/page", True, "/page", 405),
    ]


def test_the_lane_matches_paths_under_a_proxy_s_root_path() -> None:
    Recorder.seen = []
    with TestClient(_lean_app(), root_path="/api") as client:
        assert client.post("/api/page").json() == {"page": 1, "path": "/api/page"}
        slash = client.post("/api/page/", follow_redirects=False)  # not the exact path: the router redirects
        assert (slash.status_code, slash.headers["location"]) == (307, "http://testserver/api/page")
    assert [(full_stack, status) for _, full_stack, _, status in Recorder.seen] == [(False, 200), (True, 307)]


def test_with_an_app_wide_body_limit_every_request_takes_the_full_stack() -> None:
    Recorder.seen = []
    with TestClient(_lean_app(max_body_size=10)) as client:
        assert client.post("/page", content=b"0123456789").json()["page"] == 1
    assert [(full_stack, status) for _, full_stack, _, status in Recorder.seen] == [(True, 200)]


def test_the_service_answers_through_the_lane_exactly_as_through_the_full_stack(
    configure: Callable[..., Settings], digits: np.ndarray
) -> None:
    app = create_app(configure(api_key="secret", cors_origins=["http://demo.example"]))
    full_stack = FastAPI.build_middleware_stack(app)  # what the app would be without the lane

    async def either(scope: Scope, receive: Receive, send: Send) -> None:
        """The service, or with an `x-full-stack` header its full stack: both in one event loop and lifespan."""
        if scope["type"] == "http" and (b"x-full-stack", b"1") in scope["headers"]:
            scope["app"] = app
            await full_stack(scope, receive, send)
        else:
            await app(scope, receive, send)

    auth = {"Authorization": "Bearer secret"}
    raw = {**auth, "Content-Type": "application/octet-stream", "Accept": "application/octet-stream"}
    json = {**auth, "Content-Type": "application/json"}
    pixels = np.rint(digits[:2] * 255).astype(np.uint8).tobytes()
    one_image = b'{"images": [[' + b"0.5, " * 783 + b"0.5]]}"
    requests: list[tuple[int, str, str, dict[str, str], bytes]] = [  # (the status expected, request)
        (200, "POST", "/reconstruct", raw, pixels),
        (200, "POST", "/reconstruct?format=png", raw, pixels),
        (200, "POST", "/encode", json, one_image),
        (200, "POST", "/encode", {**json, "Origin": "http://demo.example"}, one_image),  # with CORS headers
        (200, "POST", "/decode?model=mlp2-p8", json, b'{"latents": [[1, 2, 3, 4, 5, 6, 7, 8]]}'),
        (200, "GET", "/latent-map?limit=5", auth, b""),
        (401, "POST", "/reconstruct", {"Content-Type": "application/octet-stream"}, pixels),  # no API key
        (404, "POST", "/reconstruct?model=nope", raw, pixels),
        (422, "POST", "/reconstruct?version=zero", raw, pixels),
        (406, "POST", "/reconstruct?format=gif", raw, pixels),
        (422, "POST", "/reconstruct", raw, pixels[:-1]),
        (415, "POST", "/encode", {**auth, "Content-Type": "text/plain"}, b"hello"),
        (400, "POST", "/decode", json, b"{not json"),
    ]
    with TestClient(either) as client:
        for status, method, url, headers, body in requests:
            lane = client.request(method, url, headers=headers, content=body)
            full = client.request(method, url, headers={**headers, "x-full-stack": "1"}, content=body)
            assert lane.status_code == status, (url, lane.text)
            assert (lane.status_code, lane.headers, lane.content) == (full.status_code, full.headers, full.content), url
            if "Origin" in headers:
                assert lane.headers["access-control-allow-origin"] == "http://demo.example"
    counted = [
        (sample.labels, sample.value)
        for metric in app.state.metrics.registry.collect()
        if metric.name == "ae_requests"
        for sample in metric.samples
        if sample.name == "ae_requests_total"
    ]
    # every request counted once, under its route and model, whichever way it went
    assert counted and all(value % 2 == 0 for _, value in counted), counted
    assert {labels["endpoint"] for labels, _ in counted} == {"/reconstruct", "/encode", "/decode", "/latent-map"}


def _layers(app: ASGIApp) -> list[str]:
    """The classes of an ASGI stack, outermost first, following each middleware's `app` to the router."""
    names = [type(app).__name__]
    while not isinstance(app, Router):
        app = app.app  # type: ignore[attr-defined]
        names.append(type(app).__name__)
    return names


def test_the_fastapi_internals_the_lane_reads_are_there() -> None:
    """What service/lean.py assumes of FastAPI (its docstring names the tested version)."""
    parameters = inspect.signature(FastAPI.__init__).parameters
    assert "telemetry" in parameters and "max_body_size" in parameters  # LeanApp's argument, the lane's check
    assert LeanApp().max_body_size is None
    assert "build_middleware_stack" in vars(FastAPI)  # FastAPI's own stack, which LeanApp wraps
    assert tuple(Middleware(Recorder, 1, x=2)) == (Recorder, (1,), {"x": 2})  # user_middleware entries
    app = _lean_app()
    # the layers FastAPI puts around the user middleware, of which the lane keeps the exception handling
    assert _layers(FastAPI.build_middleware_stack(app)) == [
        "ServerErrorMiddleware",
        "ExceptionTelemetryMiddleware",
        "AppBodyLimitMiddleware",
        "Recorder",
        "ExceptionMiddleware",
        "AsyncExitStackMiddleware",
        "APIRouter",
    ]


def test_the_service_s_inference_requests_take_the_lane(configure: Callable[..., Settings]) -> None:
    Recorder.seen = []
    app = create_app(configure())
    app.add_middleware(Recorder)
    with TestClient(app) as client:
        assert client.post("/encode", json={"images": [[0.5] * 784]}).status_code == 200
        assert client.get("/latent-map?limit=1").status_code == 200
        assert client.get("/models").status_code == 200
    assert [(path, full_stack) for path, full_stack, _, _ in Recorder.seen] == [
        ("/encode", False),
        ("/latent-map", False),
        ("/models", True),
    ]
