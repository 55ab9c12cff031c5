"""Health, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import PlainTextResponse, Response

from service.codecs import json_response
from service.core import Catalog
from service.deps import require_api_key
from service.errors import NotReady
from service.schemas import NOT_READY, HealthResponse, ReadyResponse

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=HealthResponse)
async def healthz() -> Response:
    """Alive: the process answers."""
    return json_response({"status": "ok"})


@router.get("/readyz", response_model=ReadyResponse, responses={503: NOT_READY})
async def readyz(request: Request) -> Response:
    """Ready once every model is loaded and warmed, until shutdown begins (SIGTERM); zero models is not ready."""
    catalog: Catalog | None = request.app.state.catalog
    skipped = catalog.skipped if catalog else {}
    if request.app.state.draining or (catalog is not None and catalog.closing):
        raise NotReady("shutting down: draining, then stopping", skipped=skipped)
    if catalog is None:
        raise NotReady("no model loaded yet", skipped=skipped)
    if len(catalog) == 0:
        raise NotReady("no valid model in the store", skipped=catalog.skipped)
    return json_response({"status": "ready", "versions": len(catalog), "skipped": catalog.skipped})


@router.get("/metrics", dependencies=[Depends(require_api_key)], response_class=PlainTextResponse,
            response_description="Prometheus text exposition format")  # fmt: skip
async def metrics(request: Request) -> Response:
    """Prometheus text: requests and latency per endpoint and model, batch sizes, queue depth."""
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
