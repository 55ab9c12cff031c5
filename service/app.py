"""The app factory: settings in, a FastAPI app out; the inference core loads in the lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from models import CheckpointStore
from models.device import resolve_device
from service.core import Catalog, Runtime
from service.errors import install_error_handlers
from service.lean import LeanApp
from service.metrics import Metrics, MetricsMiddleware
from service.routes import catalog, demo, docs, inference, operations, v2
from service.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        device = resolve_device(settings.device)
        runtime = Runtime(device, settings.batching(device), metrics)
        store = CheckpointStore(settings.store)
        loaded = await Catalog.load(store, runtime, settings.max_loaded_versions, settings.unload_grace_seconds)
        app.state.catalog = loaded  # ready: /readyz says so, requests resolve models in it
        stop_watching = asyncio.Event()
        watcher = asyncio.create_task(loaded.watch(settings.reload_interval, stop_watching))
        yield
        stop_watching.set()
        await watcher
        await loaded.close()  # stop advertising readiness, then finish what is queued
        runtime.close()

    app = LeanApp(
        title="MNIST autoencoder service",
        summary="Encode, decode and reconstruct handwritten digits with the autoencoders of a lab report",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # /docs and /redoc: service/routes/docs.py, without a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.catalog = None  # until the lifespan has loaded it
    app.state.draining = False  # set by the server on SIGTERM (service/draining.py): /readyz says 503
    install_error_handlers(app)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"],
                           allow_headers=["*"])  # fmt: skip
    # The inference routes go first and straight into the app's route list: matching them through
    # an included router (FastAPI's wrapper around each inclusion) costs time on every request
    # (BENCHMARKS.md, serving, step 2).
    app.router.routes[:0] = inference.router.routes
    v2.install(app)  # the Open Inference Protocol (KServe V2): service/routes/v2.py
    for router in (catalog.router, operations.router, demo.router, docs.router):
        app.include_router(router)
    app.openapi = docs.document(app, settings)  # type: ignore[method-assign]  # FastAPI's way to complete it
    return app
