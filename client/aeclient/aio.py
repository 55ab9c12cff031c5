"""The asynchronous client: the jobs of jobs.py sent with httpx.AsyncClient, a job's requests as tasks."""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any, TypeVar

import httpx
import numpy as np

from aeclient.base import RETRYABLE, ClientBase, Progress, report
from aeclient.catalog import HEALTH, MODELS, READY, Catalogue, ModelRef, Readiness, parse_catalogue, parse_readiness
from aeclient.jobs import Job, LatentMap, Span, Transport
from aeclient.wire import Call, Limits, Reply, Version

T = TypeVar("T")


class AsyncClient(ClientBase[httpx.AsyncClient]):
    """Client's twin for asyncio: the same options, methods and results, awaited."""

    def _new_http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=self.timeout)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        tb: TracebackType | None) -> None:  # fmt: skip
        await self.aclose()

    async def aclose(self) -> None:
        if self._own:
            await self._http.aclose()

    async def encode(self, images: Any, *, model: str | None = None, version: Version | None = None,
                     transport: Transport | None = None, progress: Progress | None = None) -> np.ndarray:  # fmt: skip
        """See Client.encode."""
        return await self._run(self._encode(images, model, version, transport), progress)

    async def decode(self, latents: Any, *, floats: bool = False, model: str | None = None,
                     version: Version | None = None, transport: Transport | None = None,
                     progress: Progress | None = None) -> np.ndarray:  # fmt: skip
        """See Client.decode."""
        return await self._run(self._decode(latents, floats, model, version, transport), progress)

    async def reconstruct(self, images: Any, *, floats: bool = False, model: str | None = None,
                          version: Version | None = None, transport: Transport | None = None,
                          progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """See Client.reconstruct."""
        return await self._run(self._reconstruct(images, floats, model, version, transport), progress)

    async def latent_map(self, images: Any = None, *, limit: int | None = None, model: str | None = None,
                         version: Version | None = None, transport: Transport | None = None,
                         progress: Progress | None = None) -> LatentMap:  # fmt: skip
        """See Client.latent_map."""
        return await self._run(self._latent_map(images, limit, model, version, transport), progress)

    async def models(self) -> Catalogue:
        catalogue = parse_catalogue(await self._send(MODELS))
        self._limits = catalogue.limits
        return catalogue

    async def resolve(self, model: str | None = None, version: Version | None = None) -> ModelRef:
        target = self._target(model, version)
        return (await self.models()).resolve(target.model, target.version)

    async def limits(self) -> Limits:
        return self._limits or (await self.models()).limits

    async def health(self) -> bool:
        try:
            return (await self._http.request(**self._request_args(HEALTH))).status_code == 200
        except httpx.TransportError:
            return False

    async def ready(self) -> Readiness:
        return parse_readiness(await self._exchange(READY))

    async def _exchange(self, call: Call) -> Reply:
        response = await self._http.request(**self._request_args(call))
        return Reply(response.status_code, response.headers, response.content)

    async def _outcome(self, call: Call) -> Reply | Exception:
        try:
            return await self._exchange(call)
        except RETRYABLE as e:  # no reply: worth another try
            return e

    async def _send(self, call: Call) -> Reply:
        """`call`, tried again as `retry` says; the final reply (error replies included), or ConnectionFailed."""
        tries = self._tries(call)
        while (wait := tries.wait_after(await self._outcome(call))) is not None:
            await asyncio.sleep(wait)
        return tries.reply

    async def _run(self, job: Job[T], progress: Progress | None) -> T:
        spans = job.spans(await self.limits(), self.chunk_size)
        reply = await self._send(job.call(spans[0], job.target))
        first = job.part(spans[0], reply)
        report(progress, spans[0])
        target = job.target.answered_by(reply)  # one version answers the whole job
        room = asyncio.Semaphore(self.concurrency)

        async def one(span: Span) -> Any:
            async with room:
                part = job.part(span, await self._send(job.call(span, target)))
            report(progress, span)
            return part

        tasks = [asyncio.ensure_future(one(span)) for span in spans[1:]]
        try:
            rest = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            raise
        return job.result([first, *rest])
