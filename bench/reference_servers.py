"""The two reference servers that bench/serving.py measures beside the service, under the same uvicorn.

- naive: what a first FastAPI version would do: a pydantic model with the images as lists of
  floats, one forward pass per request inside the route, the result returned as a dict for
  FastAPI to encode as JSON. `/reconstruct` and `/encode`, JSON in and out.
- ceiling: `/echo` reads the raw body and returns it; no parsing and no model, so it is the
  HTTP stack's own limit for a body of that size.
- bare: the service's raw-bytes path with no framework: a plain ASGI callable under the same
  uvicorn, `/reconstruct` and `/encode` for uint8 bodies only, forward passes off the event loop
  in one worker thread over whatever queued while the previous pass ran and in the event-loop
  turns after it (as the service's CPU default), the same torch thread policy; no validation
  beyond the body's length, no metrics, no models to choose. What the service's design can
  reach once FastAPI and its features are taken away.

python -m bench.reference_servers naive|ceiling|bare --port PORT
"""

from __future__ import annotations

import argparse
import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
import uvicorn
from fastapi import FastAPI, Request
from pydantic import BaseModel
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from models import Autoencoder, CheckpointStore
from service.app import on_torch_threads
from service.batcher import SETTLE_TURNS

LOOPBACK = "127.0.0.1"
PIXELS = 784
MAX_BATCH = 256  # images per pass, as the service's AE_MAX_BATCH_SIZE default


class ImagesIn(BaseModel):
    images: list[list[float]]  # each image 784 floats in [0, 1]


def _health(app: FastAPI) -> None:
    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}


def naive_app(model: Autoencoder, device: torch.device) -> FastAPI:
    app = FastAPI(title="naive reference")
    _health(app)

    @app.post("/reconstruct")
    def reconstruct(body: ImagesIn) -> dict[str, list[list[float]] | list[float]]:
        x = torch.tensor(body.images, dtype=torch.float32, device=device)
        with torch.inference_mode():
            out = model(x)
            mse = (out - x).square().mean(dim=1)
        return {"reconstructions": out.cpu().tolist(), "mse": mse.cpu().tolist()}

    @app.post("/encode")
    def encode(body: ImagesIn) -> dict[str, list[list[float]]]:
        x = torch.tensor(body.images, dtype=torch.float32, device=device)
        with torch.inference_mode():
            return {"latents": model.encode(x).cpu().tolist()}

    return app


def ceiling_app() -> FastAPI:
    app = FastAPI(title="ceiling reference")
    _health(app)

    @app.post("/echo")
    async def echo(request: Request) -> Response:
        return Response(await request.body(), media_type=request.headers.get("content-type"))

    return app


class _Passes:
    """Requests queue; one worker thread runs a pass over what queued while the previous pass ran."""

    def __init__(self, model: Autoencoder, device: torch.device) -> None:
        self.model, self.device = model, device
        self.forward = on_torch_threads(self._forward, max(1, torch.get_num_threads() - 1))
        self.pool = ThreadPoolExecutor(1, "forward")
        self.queue: list[tuple[str, np.ndarray, asyncio.Future[np.ndarray]]] = []
        self.drainer: asyncio.Task[None] | None = None

    def _forward(self, kind: str, parts: list[np.ndarray]) -> dict[str, np.ndarray]:
        x = torch.from_numpy(np.concatenate(parts)).to(self.device).float().div_(255)
        with torch.inference_mode():
            out = self.model.encode(x) if kind == "encode" else self.model(x)
        return {kind: out.cpu().numpy()}

    async def run(self, kind: str, rows: np.ndarray) -> np.ndarray:
        future = asyncio.get_running_loop().create_future()
        self.queue.append((kind, rows, future))
        if self.drainer is None or self.drainer.done():
            self.drainer = asyncio.ensure_future(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self.queue:
            kind, size, batch = self.queue[0][0], 0, []
            while self.queue and self.queue[0][0] == kind and (not batch or size + len(self.queue[0][1]) <= MAX_BATCH):
                batch.append(self.queue.pop(0))
                size += len(batch[-1][1])
            out = (await loop.run_in_executor(self.pool, self.forward, kind, [rows for _, rows, _ in batch]))[kind]
            start = 0
            for _, rows, future in batch:
                future.set_result(out[start : start + len(rows)])
                start += len(rows)
            for _ in range(SETTLE_TURNS):  # as the service's batcher: let the replies bring requests back
                if sum(len(rows) for _, rows, _ in self.queue) >= MAX_BATCH:
                    break
                await asyncio.sleep(0)


def bare_app(model: Autoencoder, device: torch.device) -> ASGIApp:
    passes = _Passes(model, device)

    async def respond(send: Send, status: int, body: bytes) -> None:
        headers = [(b"content-type", b"application/octet-stream"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            for phase in ("startup", "shutdown"):
                await receive()
                await send({"type": f"lifespan.{phase}.complete"})
            return
        if scope["path"] == "/healthz":
            return await respond(send, 200, b"ok")
        kind = {"/reconstruct": "reconstruct", "/encode": "encode"}.get(scope["path"])
        chunks = [(message := await receive()).get("body", b"")]
        while message.get("more_body"):
            chunks.append((message := await receive()).get("body", b""))
        body = b"".join(chunks)
        if kind is None or scope["method"] != "POST":
            return await respond(send, 404, b"POST /reconstruct or /encode")
        if not body or len(body) % PIXELS:
            return await respond(send, 400, b"the body must be N x 784 uint8 pixels")
        out = await passes.run(kind, np.frombuffer(body, np.uint8).reshape(-1, PIXELS))
        result = np.rint(out * np.float32(255)).astype(np.uint8) if kind == "reconstruct" else out.astype("<f4")
        await respond(send, 200, result.tobytes())

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.reference_servers", description=__doc__)
    parser.add_argument("kind", choices=("naive", "ceiling", "bare"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--store", type=Path, default=Path("checkpoints"))
    parser.add_argument("--model", default="mlp2-p16", help="the service's default model")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--log-level", default="info", help="uvicorn's, as the service's AE_LOG_LEVEL")
    args = parser.parse_args(argv)
    app: Any = ceiling_app()
    if args.kind != "ceiling":
        device = torch.device(args.device)
        model = CheckpointStore(args.store).load_latest(args.model, device).model
        app = naive_app(model, device) if args.kind == "naive" else bare_app(model, device)
    uvicorn.run(app, host=LOOPBACK, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
