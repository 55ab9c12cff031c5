"""Lean routes: the endpoint gets the request and its validated query model, nothing FastAPI would inject."""

from __future__ import annotations

from typing import Annotated

import pytest
from fastapi import Depends, FastAPI, Query, Request
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse, Response

from service.errors import install_error_handlers
from service.lean import LeanRoute


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
