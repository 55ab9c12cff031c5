"""The synchronous client: the jobs of jobs.py sent with httpx.Client, a job's requests from a thread pool."""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from types import TracebackType
from typing import Any, TypeVar

import httpx
import numpy as np

from aeclient.base import RETRYABLE, ClientBase, Progress, report
from aeclient.catalog import HEALTH, MODELS, READY, Catalogue, ModelRef, Readiness, parse_catalogue, parse_readiness
from aeclient.jobs import Job, LatentMap, Span, Transport
from aeclient.wire import Call, Limits, Reply, Version

T = TypeVar("T")


class Client(ClientBase[httpx.Client]):
    """A client of the autoencoder service; ClientBase lists the options, README "Use from Python" gives a tour."""

    def _new_http(self) -> httpx.Client:
        return httpx.Client(timeout=self.timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._own:
            self._http.close()

    def encode(self, images: Any, *, model: str | None = None, version: Version | None = None,
               transport: Transport | None = None, progress: Progress | None = None) -> np.ndarray:  # fmt: skip
        """Images -> latent codes, float32 (N, p). Images: arrays (N x 784 or N x 28 x 28; uint8, or floats in
        [0, 1]), or files (paths, PIL images, PNG/JPEG bytes), which the service normalises like MNIST."""
        return self._run(self._encode(images, model, version, transport), progress)

    def decode(self, latents: Any, *, floats: bool = False, model: str | None = None, version: Version | None = None,
               transport: Transport | None = None, progress: Progress | None = None) -> np.ndarray:  # fmt: skip
        """Latent codes (N, p) -> images (N, 28, 28): uint8, or float32 in [0, 1] with `floats` (8-bit precision
        over the raw transport, the service's floats over JSON)."""
        return self._run(self._decode(latents, floats, model, version, transport), progress)

    def reconstruct(self, images: Any, *, floats: bool = False, model: str | None = None,
                    version: Version | None = None, transport: Transport | None = None,
                    progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """Images -> (reconstructions (N, 28, 28) as `decode` gives them, MSE per image (N,) float32)."""
        return self._run(self._reconstruct(images, floats, model, version, transport), progress)

    def latent_map(self, images: Any = None, *, limit: int | None = None, model: str | None = None,
                   version: Version | None = None, transport: Transport | None = None,
                   progress: Progress | None = None) -> LatentMap:  # fmt: skip
        """The test set's codes on a 2-D map (`limit` points), and where `images` land on it, if given."""
        return self._run(self._latent_map(images, limit, model, version, transport), progress)

    def models(self) -> Catalogue:
        """The served models, their versions and aliases, the default model and the limits of one request."""
        catalogue = parse_catalogue(self._send(MODELS))
        self._limits = catalogue.limits
        return catalogue

    def resolve(self, model: str | None = None, version: Version | None = None) -> ModelRef:
        """The model and version number a call would get now (this client's defaults unless given)."""
        target = self._target(model, version)
        return self.models().resolve(target.model, target.version)

    def limits(self) -> Limits:
        """What one request may carry, as the service states it (asked once, then remembered)."""
        return self._limits or self.models().limits

    def health(self) -> bool:
        """Whether the service answers (GET /healthz), without retrying."""
        try:
            return self._http.request(**self._request_args(HEALTH)).status_code == 200
        except httpx.TransportError:
            return False

    def ready(self) -> Readiness:
        """Whether the service serves models now (GET /readyz), without retrying."""
        return parse_readiness(self._exchange(READY))

    def _exchange(self, call: Call) -> Reply:
        response = self._http.request(**self._request_args(call))
        return Reply(response.status_code, response.headers, response.content)

    def _outcome(self, call: Call) -> Reply | Exception:
        try:
            return self._exchange(call)
        except RETRYABLE as e:  # no reply: worth another try
            return e

    def _send(self, call: Call) -> Reply:
        """`call`, tried again as `retry` says; the final reply (error replies included), or ConnectionFailed."""
        tries = self._tries(call)
        while (wait := tries.wait_after(self._outcome(call))) is not None:
            time.sleep(wait)
        return tries.reply

    def _run(self, job: Job[T], progress: Progress | None) -> T:
        spans = job.spans(self.limits(), self.chunk_size)
        reply = self._send(job.call(spans[0], job.target))
        parts = {spans[0]: job.part(spans[0], reply)}
        report(progress, spans[0])
        target = job.target.answered_by(reply)  # one version answers the whole job
        if self.concurrency == 1:  # in this thread, one after the other
            for span in spans[1:]:
                parts[span] = job.part(span, self._send(job.call(span, target)))
                report(progress, span)
        elif len(spans) > 1:
            with ThreadPoolExecutor(min(self.concurrency, len(spans) - 1)) as pool:
                futures = {pool.submit(lambda s: job.part(s, self._send(job.call(s, target))), span): span
                           for span in spans[1:]}  # fmt: skip
                try:
                    for done in as_completed(futures):
                        parts[futures[done]] = done.result()
                        report(progress, futures[done])
                except BaseException:
                    _cancel(futures)
                    raise
        return job.result([parts[span] for span in spans])


def _cancel(futures: dict[Future[Any], Span]) -> None:
    for future in futures:
        future.cancel()
