"""The app factory: settings in, a FastAPI app out; models load in the lifespan."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

import numpy as np
import torch
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from models import CheckpointStore
from models.device import resolve_device
from service.batcher import Forward, MicroBatcher, Outputs
from service.catalog import Catalog
from service.errors import install_error_handlers
from service.lean import LeanApp
from service.metrics import Metrics, MetricsMiddleware
from service.routes import catalog, demo, docs, inference, operations
from service.settings import Settings

log = logging.getLogger(__name__)


LARGE_PASS = 64  # images; a smaller forward pass runs on one torch thread


def on_torch_threads(forward: Forward, threads: int) -> Forward:
    """`forward` with `threads` torch threads for a large pass and one for a small one.

    A second thread speeds a large pass up (1.6x at 256 images here) but slows a small one
    down, badly so under load, when it waits for a core the event loop and clients hold.
    """

    def run(kind: str, parts: list[np.ndarray]) -> Outputs:
        torch.set_num_threads(threads if sum(len(part) for part in parts) >= LARGE_PASS else 1)  # this thread's
        return forward(kind, parts)

    return run


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        device = resolve_device(settings.device)
        # Worker threads run the forward passes (and the warm-up), each with its own torch thread count.
        workers = settings.workers(device)
        threads = settings.large_pass_threads(workers)
        forward_pool = ThreadPoolExecutor(workers, "forward")
        app.state.forward_pool = forward_pool
        loaded = Catalog(CheckpointStore(settings.store), device)
        await asyncio.get_running_loop().run_in_executor(forward_pool, loaded.load)
        for served in loaded:
            labels = (served.name, str(served.version))
            served.batcher = MicroBatcher(
                on_torch_threads(served.forward, threads),
                max_batch_size=settings.max_batch_size,
                max_delay=settings.batch_delay(device),
                queue_size=settings.queue_size,
                on_batch=metrics.batch_images.labels(*labels).observe,
                executor=forward_pool,
                workers=workers,
            )
            metrics.queue_images.labels(*labels).set_function(served.batcher.queued_images)
            served.batcher.start()
        app.state.catalog = loaded
        # What is loaded now lives as long as the process: frozen out of the collector's sight, a full
        # collection no longer walks torch's and the models' objects (measured: 90 ms pauses every
        # second or so under load, p99 17x p50; 8 ms p99 once frozen).
        gc.collect()
        gc.freeze()
        app.state.ready = True
        yield
        app.state.ready = False  # stop advertising readiness, then finish what is queued
        await asyncio.gather(*(served.batcher.close() for served in loaded if served.batcher))
        forward_pool.shutdown()

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
    app.state.catalog = Catalog(CheckpointStore(settings.store), resolve_device("cpu"))  # empty until loaded
    app.state.ready = False
    install_error_handlers(app)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"],
                           allow_headers=["*"])  # fmt: skip
    # The inference routes go first and straight into the app's route list: matching them through
    # an included router (FastAPI's wrapper around each inclusion) cost ~20 us per request.
    app.router.routes[:0] = inference.router.routes
    for router in (catalog.router, operations.router, demo.router, docs.router):
        app.include_router(router)
    return app
