"""Prometheus metrics, one registry per app so that several apps (tests) never collide."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("ae_requests", "HTTP requests", ["endpoint", "model", "status"], registry=self.registry)
        self.latency = Histogram("ae_request_seconds", "Request latency", ["endpoint", "model"], registry=self.registry)
        self.batch_images = Histogram(
            "ae_batch_images",
            "Images per forward pass",
            ["model", "version"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.queue_images = Gauge(
            "ae_queue_images", "Images waiting for a batch", ["model", "version"], registry=self.registry
        )
        self.reloads = Counter("ae_store_reloads", "Store changes the service followed", registry=self.registry)
        self.loaded_versions = Gauge("ae_loaded_versions", "Versions loaded", ["model"], registry=self.registry)
        self._loaded_models: set[str] = set()
        self._request_series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def batch_observer(self, name: str, version: int) -> Callable[[int], None]:
        """Records the images of each forward pass of one model version (service.core's ModelMetrics)."""
        return self.batch_images.labels(name, str(version)).observe

    def watch_queue(self, name: str, version: int, queued_images: Callable[[], int]) -> None:
        """The queue gauge of one model version reads `queued_images()` at each scrape."""
        self.queue_images.labels(name, str(version)).set_function(queued_images)

    def serving(self, loaded: dict[str, int]) -> None:
        """What is served changed (a reload): the versions loaded per model now."""
        self.reloads.inc()
        for name in self._loaded_models - loaded.keys():
            self.loaded_versions.remove(name)
        for name, count in loaded.items():
            self.loaded_versions.labels(name).set(count)
        self._loaded_models = set(loaded)

    def forget(self, name: str, version: int) -> None:
        """An unloaded version's series go: a scrape no longer shows them."""
        for metric in (self.batch_images, self.queue_images):
            with contextlib.suppress(KeyError):
                metric.remove(name, str(version))

    def request_series(self, labels: tuple[str, str, int]) -> tuple[Counter, Histogram]:
        """The request counter and latency histogram of (endpoint, model, status), looked up once each.

        `labels()` validates and locks on every call; a dict lookup is a fraction of that, per request.
        """
        series = self._request_series.get(labels)
        if series is None:
            endpoint, model, status = labels
            series = self.requests.labels(endpoint, model, str(status)), self.latency.labels(endpoint, model)
            self._request_series[labels] = series
        return series


class MetricsMiddleware:
    """Counts and times every request by route template and model, and names the model version that answered.

    `resolve_model` (service/deps.py) records the model and version a request resolved in its scope
    state: the metrics take the model as a label, and the response carries both as `X-Model` and
    `X-Model-Version` (whatever its format: a raw or PNG reply has no body field to say it).
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                answered = scope.get("state", {}).get("answered_by")
                if answered is not None:
                    message["headers"] = [*message.get("headers", ()), *answered]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route: Any = scope.get("route")
            labels = (getattr(route, "path", "unmatched"), scope.get("state", {}).get("model", ""), status)
            counter, histogram = self.metrics.request_series(labels)
            counter.inc()
            histogram.observe(time.monotonic() - started)
