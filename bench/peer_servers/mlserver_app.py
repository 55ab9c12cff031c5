"""The autoencoder under MLServer (Seldon), through the Open Inference Protocol (KServe V2) over REST.

POST /v2/models/<model>/infer {"inputs": [{"name": "images", "shape": [N, 784], "datatype": "FP32", "data": [...]}]}
(data flat or nested, as MLServer accepts) -> outputs "reconstructions" (FP32 [N, 784]) and "mse" (FP32 [N]), their
data flat. Readiness: GET /v2/models/<model>/ready answers 200 only once the model has loaded (404 before MLServer
registers it, 400 while it loads); /v2/health/ready is 200 whenever no registered model is still loading.

The settings are written to a temporary folder that `mlserver start` would read (settings.json, and
<model>/model-settings.json naming the runtime below), then the server runs in this process the way `mlserver start`
runs it. As MLServer's documentation advises:

- adaptive batching (user-guide/adaptive-batching): `max_batch_size` counts *requests* (the batcher takes up to that
  many queued requests, whatever their rows; mlserver/batching/adaptive.py), so it is --max-batch-size as given;
  `max_batch_time` is in seconds;
- parallel inference (user-guide/parallel-inference): `parallel_workers` (server-wide, default 1) puts the model in a
  pool of that many worker processes fed over multiprocessing queues, 0 keeps inference in the main process. The
  guide notes the IPC overhead is "particularly noticeable for lightweight inference methods" and offers 0 for them:
  this model's forward pass is well under a millisecond, so 0 is the default here (one process, one model instance);
  --parallel-workers 1 gives MLServer's default layout (main process + one spawned worker that holds the model, plus
  multiprocessing's resource tracker; it needs uvloop<0.22, pinned in requirements/mlserver.txt: with 0.22+ the
  worker dies at start on asyncio.get_event_loop() in mlserver/parallel/worker.py);
- no Prometheus metrics server or middleware (metrics_endpoint null), no access logs (debug false), logs at
  WARNING, no GZip middleware (it would compress multi-megabyte JSON replies for any client that accepts gzip, which
  httpx does by default; the other peers do not compress). gRPC cannot be turned off: it listens on a free port.

SIGTERM / SIGINT: MLServer's own handlers stop the pool, gRPC and REST servers; then the folder is removed.

python -m bench.peer_servers.mlserver_app --port P --store checkpoints --model mlp2-p16 \
    --max-batch-size 64 --max-delay-ms 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path

import numpy as np
from mlserver import MLModel, MLServer
from mlserver.cli.serve import load_settings
from mlserver.codecs import NumpyCodec
from mlserver.errors import InferenceError
from mlserver.logging import configure_logger
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import install_uvloop_event_loop

from bench.peer_servers.common import PIXELS, Reconstructor, free_port, load_model, parser

INPUT = "images"
QUIET = ["mlserver", "uvicorn", "uvicorn.error", "uvicorn.access", "grpc"]


class AutoencoderRuntime(MLModel):
    """MLServer's custom runtime: the checkpoint from model-settings' parameters.extra, one forward pass per batch."""

    async def load(self) -> bool:
        extra = self.settings.parameters.extra if self.settings.parameters else {}
        self._reconstruct = Reconstructor(load_model(extra["store"], extra["model"]))
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        tensor = next((i for i in payload.inputs if i.name == INPUT), None)
        if tensor is None or tensor.datatype != "FP32":
            raise InferenceError(f"expected one FP32 input named {INPUT!r}")
        try:
            images = NumpyCodec.decode_input(tensor).reshape(-1, PIXELS)
        except ValueError as error:
            raise InferenceError(f"{INPUT!r} must be [N, {PIXELS}] floats: {error}") from error
        reconstructions, mse = self._reconstruct(images.astype(np.float32, copy=False))
        mse_output = NumpyCodec.encode_output("mse", mse)
        mse_output.shape = [len(mse)]  # the codec would make it [N, 1]; the batcher splits [N] just as well
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            outputs=[NumpyCodec.encode_output("reconstructions", reconstructions), mse_output],
        )


def write_settings(folder: Path, args: argparse.Namespace, parallel_workers: int) -> None:
    """settings.json and <model>/model-settings.json, as `mlserver start <folder>` reads them."""
    logging = {
        "version": 1,
        "disable_existing_loggers": False,
        "loggers": {name: {"level": "WARNING"} for name in QUIET},
    }
    settings = {
        "debug": False,
        "host": args.host,
        "http_port": args.port,
        "grpc_port": free_port(args.host),
        "metrics_endpoint": None,
        "gzip_enabled": False,
        "parallel_workers": parallel_workers,
        "logging_settings": logging,
        "metrics_dir": str(folder / ".metrics"),
        "environments_dir": str(folder / ".envs"),
        "load_models_at_startup": True,
    }
    model_settings = {
        "name": args.model,
        "implementation": "bench.peer_servers.mlserver_app.AutoencoderRuntime",
        "max_batch_size": args.max_batch_size,
        "max_batch_time": args.max_delay_ms / 1000,
        "parameters": {"extra": {"store": str(Path(args.store).resolve()), "model": args.model}},
    }
    (folder / "settings.json").write_text(json.dumps(settings, indent=2))
    (folder / args.model).mkdir()
    (folder / args.model / "model-settings.json").write_text(json.dumps(model_settings, indent=2))


async def serve(folder: str) -> None:
    """What `mlserver start <folder>` does."""
    settings, models_settings = await load_settings(folder)
    await MLServer(settings).start(models_settings)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--parallel-workers", type=int, default=0, help="MLServer's inference pool size (0: in-process)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlserver-") as folder:
        write_settings(Path(folder), args, args.parallel_workers)
        configure_logger()
        install_uvloop_event_loop()
        asyncio.run(serve(folder))


if __name__ == "__main__":
    main()
