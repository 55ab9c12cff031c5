"""The two reference servers that bench/serving.py measures beside the service, under the same uvicorn.

- naive: what a first FastAPI version would do: a pydantic model with the images as lists of
  floats, one forward pass per request inside the route, the result returned as a dict for
  FastAPI to encode as JSON. `/reconstruct` and `/encode`, JSON in and out.
- ceiling: `/echo` reads the raw body and returns it; no parsing and no model, so it is the
  HTTP stack's own limit for a body of that size.

python -m bench.reference_servers naive|ceiling --port PORT
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import uvicorn
from fastapi import FastAPI, Request
from pydantic import BaseModel
from starlette.responses import Response

from models import Autoencoder, CheckpointStore

LOOPBACK = "127.0.0.1"


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.reference_servers", description=__doc__)
    parser.add_argument("kind", choices=("naive", "ceiling"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--store", type=Path, default=Path("checkpoints"))
    parser.add_argument("--model", default="mlp2-p16", help="the service's default model")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--log-level", default="info", help="uvicorn's, as the service's AE_LOG_LEVEL")
    args = parser.parse_args(argv)
    if args.kind == "naive":
        device = torch.device(args.device)
        app = naive_app(CheckpointStore(args.store).load_latest(args.model, device).model, device)
    else:
        app = ceiling_app()
    uvicorn.run(app, host=LOOPBACK, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
