"""Every setting of the service, from AE_* environment variables or passed by tests.

The defaults were chosen by measurement; BENCHMARKS.md ("Serving", the steps of "What changed")
keeps the figures behind them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.core import Batching


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AE_", env_file=".env", extra="ignore")

    store: Path = Path("checkpoints")
    default_model: str = "mlp2-p16"  # the best reconstructions among the shipped configurations
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # CPU threads for each torch forward pass of 64 images or more; 0: the cores but one (which
    # stays with the event loop: parsing a large JSON body costs more than its forward pass),
    # shared among the forward workers. Smaller passes always run on one thread: for them a
    # second costs more than it saves (step 5).
    torch_threads: int = Field(default=0, ge=0)
    # Forward passes that may run at once per model version, when a full batch waits behind a
    # running pass (without such a backlog passes run one at a time, and the next batch grows
    # meanwhile). 0: 2 on the CPU, where a second pass uses the idle core (step 8), 1 on CUDA.
    forward_workers: int = Field(default=0, ge=0)
    # Micro-batching: a batch leaves when it holds max_batch_size images or its oldest
    # request has waited max_delay_ms; the queue holds at most queue_size images per model.
    # Large batches make room for a second pass behind a running one (step 8).
    max_batch_size: int = Field(default=1024, ge=1)
    # Unset: 2 ms on CUDA, 0 on the CPU. On the CPU a forward pass costs less than the wait; batches
    # still form there from the requests that queue while the previous pass runs ("batching on"
    # against "batching off" in the serving tables).
    max_delay_ms: float | None = Field(default=None, ge=0)
    queue_size: int = Field(default=8192, ge=1)
    max_images_per_request: int = Field(default=4096, ge=1)
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    latent_map_limit: int = Field(default=2000, ge=1)  # default number of test points on /latent-map
    # The store is followed without a restart: reloaded on filesystem events and at least this often
    # (seconds; 0: loaded once at startup). See README, "Model lifecycle".
    reload_interval: float = Field(default=2.0, ge=0)
    max_loaded_versions: int = Field(default=4, ge=1)  # per model, the newest; the stable one is always kept too
    unload_grace_seconds: float = Field(default=30.0, ge=0)  # a removed version answers what it accepted first
    cors_origins: list[str] = []
    log_level: str = "info"
    # uvicorn's line per request at log level info. Off, a small request costs much less CPU
    # (step 12): worth it where a proxy logs requests anyway.
    access_log: bool = True
    # On SIGTERM (or Ctrl+C): seconds of /readyz answering 503 while requests are still served, for a load
    # balancer polling readiness to take the instance out; then it stops accepting, finishes the requests in
    # flight and what is queued, and exits. 0: stop accepting at once. A second signal ends the drain.
    drain_seconds: float = Field(default=5.0, ge=0)
    api_key: SecretStr | None = None  # when set: inference, /models and /metrics need "Authorization: Bearer <key>"
    host: str = "127.0.0.1"
    port: int = 8000
    # Pixels an uploaded image may decode to (a JPEG counted at the 1/2 to 1/8 scale it decodes at:
    # a 12-megapixel phone photo is 0.2 million): 2000x2000 holds any scan, photo or drawing of a
    # digit and takes ~15 ms and ~60 MB to decode; a poster-sized image is refused before decoding.
    max_image_pixels: int = Field(default=4_000_000, ge=784)
    # Pixels all of a request's images may decode to: 4,096 MNIST-size PNGs are 3.2 million. Bounds a
    # request's time in a decode thread: 0.2 s for four 2000x2000 images, 1.4 s for the most rows
    # (1,953 strips of 1x8192), measured on 2 busy cores (BENCHMARKS.md).
    max_request_pixels: int = Field(default=16_000_000, ge=784)
    # Threads that decode images and parse large bodies (service.budget), apart from the forward
    # passes' so that a storm of uploads cannot delay those; each holds one image's memory at a time.
    # One: each more thread is one more contender for the GIL, which the event loop needs.
    decode_threads: int = Field(default=1, ge=1)
    # Large parses and decodes running in those threads or waiting for one, at most; more are a 503
    # with Retry-After. Each waiting one holds its body: 64 in-budget PNG uploads of 2000x2000 are
    # about a second of decoding, and a flood of them cannot grow memory or waits without end.
    decode_queue: int = Field(default=64, ge=1)
    # A JSON body's limit. orjson turns it into Python objects holding the GIL, about 5 ms per MB
    # in one call, and the event loop waits for the GIL meanwhile, even with the parse in a decode
    # thread: 8 MiB (about 1,200 images) keeps that under ~50 ms. Raw bytes are not parsed.
    max_json_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)

    def workers(self, device: torch.device) -> int:
        """Forward passes that may run at once: forward_workers, or by default 2 on the CPU and 1 on CUDA."""
        return self.forward_workers or (1 if device.type == "cuda" else 2)

    def large_pass_threads(self, workers: int) -> int:
        """torch threads for a pass of 64 images or more: torch_threads, or the cores but one shared by the workers."""
        return self.torch_threads or max(1, (torch.get_num_threads() - 1) // workers)

    def batch_delay(self, device: torch.device) -> float:
        """Seconds a batch may wait to fill: max_delay_ms, or by default 2 ms on CUDA and 0 on the CPU."""
        if self.max_delay_ms is not None:
            return self.max_delay_ms / 1000
        return 0.002 if device.type == "cuda" else 0.0

    def batching(self, device: torch.device) -> Batching:
        """The inference core's limits on `device`."""
        workers = self.workers(device)
        return Batching(self.max_batch_size, self.batch_delay(device), self.queue_size, workers,
                        self.large_pass_threads(workers))  # fmt: skip
