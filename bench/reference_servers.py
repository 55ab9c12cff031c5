"""The reference servers that bench/serving.py measures beside the service, under the same uvicorn.

- naive: what a first FastAPI version would do: a pydantic model with the images as lists of
  floats, one forward pass per request inside the route, the result returned as a dict for
  FastAPI to encode as JSON. `/reconstruct` and `/encode`, JSON in and out.
- ceiling: `/echo` reads the raw body and returns it; no parsing and no model, so it is the
  HTTP stack's own limit for a body of that size.
- bare: the service's raw-bytes path with no framework: a plain ASGI callable under the same
  uvicorn, `/reconstruct` and `/encode` for uint8 bodies only, through the service's own
  forward pass, micro-batcher, worker threads, torch thread policy and raw replies at their
  default settings; no validation beyond the body's length, no metrics, no models to choose,
  no disconnect watch. What the service's design can reach once FastAPI and its features are
  taken away.

python -m bench.reference_servers naive|ceiling|bare --port PORT
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch
import uvicorn
from fastapi import FastAPI, Request
from pydantic import BaseModel
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from bench.launch import LOOPBACK
from models import Autoencoder, Checkpoint, CheckpointStore
from models.images import PIXELS
from service.codecs import raw_response
from service.core import Pass, Runtime, ServedModel
from service.settings import Settings

BARE_ROUTES = {"/reconstruct": (Pass.RECONSTRUCT_PIXELS, "images"), "/encode": (Pass.ENCODE, "codes")}  # pass, output


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


def bare_app(checkpoint: Checkpoint, device: torch.device) -> ASGIApp:
    """The service's served model (forward pass, batcher, worker threads, torch thread policy) and raw
    replies at their defaults; no FastAPI."""
    runtime = Runtime(device, Settings(_env_file=None).batching(device))  # type: ignore[call-arg]
    served: list[ServedModel] = []  # started in the lifespan, on the event loop

    async def respond(send: Send, status: int, body: bytes) -> None:
        headers = [(b"content-type", b"application/octet-stream"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()
            served.append(ServedModel.start(checkpoint, runtime))
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await served[0].close()
            runtime.close()
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["path"] == "/healthz":
            return await respond(send, 200, b"ok")
        route = BARE_ROUTES.get(scope["path"])
        chunks = [(message := await receive()).get("body", b"")]
        while message.get("more_body"):
            chunks.append((message := await receive()).get("body", b""))
        body = b"".join(chunks)
        if route is None or scope["method"] != "POST":
            return await respond(send, 404, b"POST /reconstruct or /encode")
        if not body or len(body) % PIXELS:
            return await respond(send, 400, b"the body must be N x 784 uint8 pixels")
        what, output = route
        out = await served[0].submit(what, np.frombuffer(body, np.uint8).reshape(-1, PIXELS))
        await raw_response(out[output])(scope, receive, send)

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
        checkpoint = CheckpointStore(args.store).load_latest(args.model, device)
        app = naive_app(checkpoint.model, device) if args.kind == "naive" else bare_app(checkpoint, device)
    uvicorn.run(app, host=LOOPBACK, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
