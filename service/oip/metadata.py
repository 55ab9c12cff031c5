"""What the protocol says of the server and its models: server metadata, model metadata, model configuration.

The model configuration is Triton's (`GET /v2/models/{name}/config`), filled with what the service
really does: `max_batch_size` is the images of one forward pass (larger requests are split into
such passes, up to `max_images_per_request` a request), `dynamic_batching` the micro-batcher's wait,
`instance_group` the forward workers on the device. Every input is optional: a request sends one.
"""

from __future__ import annotations

from typing import Any

import torch

from service.core import Batching, ServedModel
from service.oip.mapping import TensorInfo, inputs, outputs

SERVER_NAME = "mnist-autoencoders"
PLATFORM = "pytorch"
KINDS = {"cuda": "KIND_GPU", "cpu": "KIND_CPU"}
EXTENSIONS = ["binary_tensor_data", "model_configuration", "model_repository", "statistics"]


def server_metadata(version: str) -> dict[str, Any]:
    return {"name": SERVER_NAME, "version": version, "extensions": EXTENSIONS}


def model_metadata(served: ServedModel, versions: list[int], aliases: dict[str, int]) -> dict[str, Any]:
    """The version `served` as V2 model metadata; `parameters` (beyond the spec's fields) says how to use it."""
    p = served.latent_size
    notes = {f"input {t.name}": t.note for t in inputs(p)} | {f"output {t.name}": t.note for t in outputs(p)}
    parameters = {"version": str(served.version), **{k: str(v) for k, v in aliases.items()}, "latent_size": p}
    return {
        "name": served.name,
        "versions": [str(v) for v in versions],
        "platform": PLATFORM,
        "inputs": [t.metadata() for t in inputs(p)],
        "outputs": [t.metadata() for t in outputs(p)],
        "parameters": parameters | notes,
    }


def model_config(
    served: ServedModel, versions: list[int], batching: Batching, device: torch.device, max_images: int
) -> dict[str, Any]:
    p = served.latent_size
    return {
        "name": served.name,
        "platform": PLATFORM,
        "version_policy": {"specific": {"versions": versions}},
        "max_batch_size": batching.max_batch_size,
        "input": [_config_tensor(t) | {"optional": True} for t in inputs(p)],
        "output": [_config_tensor(t) for t in outputs(p)],
        "dynamic_batching": {"max_queue_delay_microseconds": round(batching.max_delay * 1e6)},
        "instance_group": [{"name": served.name, "kind": KINDS[device.type], "count": batching.workers}],
        "parameters": {
            "max_images_per_request": {"string_value": str(max_images)},
            "queue_size_images": {"string_value": str(batching.queue_size)},
            "latent_size": {"string_value": str(p)},
        },
    }


def _config_tensor(tensor: TensorInfo) -> dict[str, Any]:
    """A tensor as the configuration gives it: without the batch dimension, a scalar per row as [1] reshaped to []."""
    dims = list(tensor.shape[1:])
    entry: dict[str, Any] = {"name": tensor.name, "data_type": f"TYPE_{tensor.datatype}", "dims": dims or [1]}
    if not dims:
        entry["reshape"] = {"shape": []}
    return entry
