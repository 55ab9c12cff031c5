"""The autoencoder as a BentoML service (1.2+ SDK: `@bentoml.service` / `@bentoml.api`), run by `bentoml serve`.

- POST /reconstruct: {"images": [[784 floats in [0, 1]], ...]} -> [[784 floats], ...], the reconstructions as a bare
  JSON array. The route uses BentoML's adaptive batching (`batchable=True`), and a batchable API returns one batched
  value that BentoML splits back along the batch dimension, so the per-image MSE has no place in the reply.
- POST /reconstruct-raw: N x 784 uint8 pixels in (a root input, the body as bytes), N x 784 uint8 out
  (application/octet-stream). Not batched: BentoML batches ndarrays, lists, data frames and images, not bytes.
- GET /readyz: 200 once the model is loaded (also /livez, /healthz, /metrics).

BentoML counts images along the batch dimension, so a batch takes up to --max-batch-size x 16 images. Its dispatcher
has no fixed batch window: it learns how long to wait from the recent batches, and its `max_latency_ms` is a deadline
after which a queued request is answered 503, so --max-delay-ms has nothing to set and is accepted only for the
common command line.

python -m bench.peer_servers.bentoml_app --port P --store checkpoints --model mlp2-p16 --max-batch-size 64 replaces
itself with `python -m bentoml serve bench.peer_servers.bentoml_app:Autoencoder`, passing the options as BentoML
template arguments (`--arg`, read by `bentoml.use_arguments`).
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, NoReturn

import bentoml
import numpy as np
from bentoml.exceptions import InvalidArgument
from bentoml.validators import ContentType, DType
from pydantic import AfterValidator, BaseModel

from bench.peer_servers import common

IMAGES_PER_REQUEST = 16  # --max-batch-size counts requests; BentoML counts images
MAX_LATENCY_MS = 60_000  # the SDK's default: a deadline, not a batch window; the same as the default request timeout


class Options(BaseModel):
    """What `bentoml serve --arg` passes to the service; the defaults only serve imports outside `bentoml serve`."""

    store: str = "checkpoints"
    model: str = "mlp2-p16"
    max_batch_images: int = 64 * IMAGES_PER_REQUEST


OPTIONS = bentoml.use_arguments(Options)


def _image_rows(images: np.ndarray) -> np.ndarray:
    # checked per request, before batching: a bad request in a batch would fail every request batched with it
    if images.ndim != 2 or images.shape[1] != common.PIXELS or not len(images):
        raise ValueError(f"images must be N x {common.PIXELS} floats, got shape {images.shape}")
    return images


Images = Annotated[np.ndarray, DType("float32"), AfterValidator(_image_rows)]
RawPixels = Annotated[bytes, ContentType("application/octet-stream")]


@bentoml.service(
    name="autoencoder",
    workers=1,  # one process for the service
    threads=1,  # one thread runs the forward passes, batched or not
    logging={"access": {"enabled": False}},
)
class Autoencoder:
    def __init__(self) -> None:
        self.reconstructor = common.Reconstructor(common.load_model(OPTIONS.store, OPTIONS.model))

    @bentoml.api(
        route="/reconstruct",
        batchable=True,
        batch_dim=0,
        max_batch_size=OPTIONS.max_batch_images,
        max_latency_ms=MAX_LATENCY_MS,
    )
    def reconstruct(self, images: Images) -> np.ndarray:
        return self.reconstructor(images)[0]

    @bentoml.api(route="/reconstruct-raw")
    def reconstruct_raw(self, body: bytes, /) -> RawPixels:
        try:
            return self.reconstructor.raw(body)
        except ValueError as e:
            raise InvalidArgument(str(e)) from e


def main(argv: list[str] | None = None) -> NoReturn:
    args = common.parser(__doc__).parse_args(argv)
    options = {
        "store": args.store,
        "model": args.model,
        "max_batch_images": args.max_batch_size * IMAGES_PER_REQUEST,
    }
    env = {**os.environ, "BENTOML_DO_NOT_TRACK": "true", "BENTOML_QUIET": "true"}
    command = [sys.executable, "-m", "bentoml", "serve", "bench.peer_servers.bentoml_app:Autoencoder"]
    command += ["--host", args.host, "--port", str(args.port)]
    for key, value in options.items():
        command += ["--arg", f"{key}={value}"]
    os.execve(sys.executable, command, env)


if __name__ == "__main__":
    main()
