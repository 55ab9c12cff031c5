"""What the synchronous and the asynchronous client share: their options, and the job each method runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

import httpx

from aeclient.inputs import as_batch, as_latents
from aeclient.jobs import Decode, Encode, PlaceOnMap, Reconstruct, Span, Transport
from aeclient.retry import Retry, Tries
from aeclient.wire import Call, Limits, Target, Version

DEFAULT_URL = "http://127.0.0.1:8000"
Progress = Callable[[int], None]  # called with the number of items each finished request held
# No reply, worth another try (the endpoints are pure functions: a request sent twice does no harm)
RETRYABLE = (httpx.NetworkError, httpx.TimeoutException, httpx.RemoteProtocolError)
H = TypeVar("H")  # the httpx client: httpx.Client or httpx.AsyncClient


class ClientBase(Generic[H]):
    """Options for every call; `model`, `version` and `transport` may be overridden per call.

    - `model`, `version`: default, the service's default model at its `stable` version; a
      version is a number, "stable" or "latest". A job of several requests is answered by one
      version whatever happens meanwhile: the first reply's version is pinned for the others.
    - `transport`: "raw" (uint8 pixels, float32 latents; the default and the fastest) or "json".
    - `concurrency`: requests of one job in flight at once. `chunk_size`: images per request, at
      most the service's limit (read from GET /models once); default, that limit.
    - `retry`: on 502/503/504 (honouring Retry-After) and connection errors; never on a 4xx.
    - `limits`: skip asking the service for them (GET /models).
    - `http`: an httpx client to send with, its owner's to close; by default the client's own.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        model: str | None = None,
        version: Version | None = None,
        transport: Transport = "raw",
        concurrency: int = 4,
        chunk_size: int | None = None,
        retry: Retry | None = None,
        timeout: float = 60.0,
        limits: Limits | None = None,
        http: H | None = None,
    ) -> None:
        if transport not in ("raw", "json"):
            raise ValueError(f"transport {transport!r}: 'raw' or 'json'")
        if concurrency < 1 or (chunk_size is not None and chunk_size < 1):
            raise ValueError("concurrency and chunk_size must be at least 1")
        self.url = url.rstrip("/")
        self.target = Target(model, version)
        self.transport: Transport = transport
        self.concurrency = concurrency
        self.chunk_size = chunk_size
        self.retry = retry or Retry()
        self.timeout = timeout
        self._limits = limits
        self._headers = {"user-agent": "aeclient"} | ({"authorization": f"Bearer {api_key}"} if api_key else {})
        self._own = http is None
        self._http: H = http if http is not None else self._new_http()

    def _new_http(self) -> H:
        raise NotImplementedError

    def _request_args(self, call: Call) -> dict[str, Any]:
        """httpx.request's arguments for `call`, this client's headers added."""
        return {"method": call.method, "url": self.url + call.path, "params": call.params,
                "headers": self._headers | call.headers, "content": call.content, "files": call.files}  # fmt: skip

    def _tries(self, call: Call) -> Tries:
        return Tries(self.retry, f"{call.method} {self.url}{call.path}")

    def _target(self, model: str | None, version: Version | None) -> Target:
        return Target(model if model is not None else self.target.model,
                      version if version is not None else self.target.version)  # fmt: skip

    def _encode(self, images: Any, model: str | None, version: Version | None, transport: Transport | None) -> Encode:
        return Encode(as_batch(images), self._target(model, version), transport or self.transport)

    def _decode(self, latents: Any, floats: bool, model: str | None, version: Version | None,
                transport: Transport | None) -> Decode:  # fmt: skip
        return Decode(as_latents(latents), self._target(model, version), transport or self.transport, floats)

    def _reconstruct(self, images: Any, floats: bool, model: str | None, version: Version | None,
                     transport: Transport | None) -> Reconstruct:  # fmt: skip
        return Reconstruct(as_batch(images), self._target(model, version), transport or self.transport, floats)

    def _latent_map(self, images: Any, limit: int | None, model: str | None, version: Version | None,
                    transport: Transport | None) -> PlaceOnMap:  # fmt: skip
        batch = None if images is None else as_batch(images)
        return PlaceOnMap(batch, self._target(model, version), transport or self.transport, limit)


def report(progress: Progress | None, span: Span) -> None:
    if progress is not None:
        progress(span[1] - span[0])
