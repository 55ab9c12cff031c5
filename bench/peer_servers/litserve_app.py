"""The autoencoder served by LitServe (https://lightning.ai/docs/litserve), as its documentation configures it.

- POST /reconstruct, JSON only: {"images": [[784 floats]]} -> {"reconstructions": [[784 floats]], "mse": [floats]}.
  Both sides are typed with pydantic models, the documented way ("Request, response format"): FastAPI validates
  the request in the HTTP process, so a malformed one is answered 422 there instead of failing the batch it would
  join, and serialises the reply with pydantic-core instead of `jsonable_encoder` and `json.dumps`.
- No raw route: LitServe hands `decode_request` either the JSON-parsed body or a form, never the bytes
  (Lightning-AI/LitServe#362, #732); reaching them means overriding its private request handler.
- GET /health (LitServe's own) answers 200 once the inference worker has loaded the model, 503 before.

Dynamic batching ("Batching" in the docs; `LitAPI(max_batch_size=..., batch_timeout=...)`): up to
--max-batch-size requests, collected for --max-delay-ms, whatever their image counts: `batch` concatenates
them, one forward pass, `unbatch` splits the rows back. One inference worker process (accelerator="cpu",
workers_per_device=1), one HTTP server process (num_api_servers defaults to the worker count), ZeroMQ
replies (fast_queue=True, "for high-throughput scenarios"), no client.py, warnings and errors only.
SIGTERM is taken as Ctrl+C, which LitServe turns into its graceful shutdown of every process it started.
"""

import os
import signal  # no `from __future__ import annotations`: LitServe hands these hints to FastAPI as they are
from typing import Annotated, Any

import litserve as ls
import numpy as np
from pydantic import BaseModel, Field

from bench.peer_servers import common

Image = Annotated[list[float], Field(min_length=common.PIXELS, max_length=common.PIXELS)]


class ImagesIn(BaseModel):
    images: Annotated[list[Image], Field(min_length=1)]


class ReconstructionsOut(BaseModel):
    reconstructions: list[list[float]]
    mse: list[float]


Batch = tuple[np.ndarray, list[int]]  # the requests' images, concatenated, and how many each sent
Result = tuple[np.ndarray, np.ndarray]  # reconstructions (N, 784), per-image MSE (N,)


class ReconstructAPI(ls.LitAPI):
    def __init__(self, store: str, model: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.store, self.model_name = store, model

    def setup(self, device: str) -> None:
        self.reconstruct = common.Reconstructor(common.load_model(self.store, self.model_name))

    def decode_request(self, request: ImagesIn) -> np.ndarray:
        return np.asarray(request.images, dtype=np.float32)

    def batch(self, inputs: list[np.ndarray]) -> Batch:
        return np.concatenate(inputs), [len(images) for images in inputs]

    def predict(self, x: Batch | np.ndarray) -> tuple[np.ndarray, np.ndarray, list[int]] | Result:
        if isinstance(x, np.ndarray):  # max_batch_size 1: LitServe neither batches nor unbatches
            return self.reconstruct(x)
        images, counts = x
        return *self.reconstruct(images), counts

    def unbatch(self, output: tuple[np.ndarray, np.ndarray, list[int]]) -> list[Result]:
        reconstructions, mse, counts = output
        return list(zip(common.split(reconstructions, counts), common.split(mse, counts), strict=True))

    def encode_response(self, output: Result) -> ReconstructionsOut:
        reconstructions, mse = output
        return ReconstructionsOut(reconstructions=reconstructions.tolist(), mse=mse.tolist())


def _interrupt_main(main_pid: int) -> None:
    """SIGTERM as Ctrl+C in this process, which LitServe answers with its graceful shutdown; the HTTP server
    process it forks inherits the handler, and dies of the signal as it would have without it."""

    def handler(signum: int, frame: object) -> None:
        if os.getpid() == main_pid:
            raise KeyboardInterrupt
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> None:
    args = common.parser(__doc__).parse_args(argv)
    api = ReconstructAPI(
        args.store,
        args.model,
        api_path="/reconstruct",
        max_batch_size=args.max_batch_size,
        batch_timeout=args.max_delay_ms / 1000,
    )
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=1, fast_queue=True, disable_openapi_url=True)
    _interrupt_main(os.getpid())  # LitServe shuts down gracefully on Ctrl+C only
    server.run(host=args.host, port=args.port, log_level="warning", generate_client_file=False)


if __name__ == "__main__":
    main()
