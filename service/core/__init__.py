"""The inference core: loaded model versions, the forward pass, the micro-batcher. No HTTP here.

A request's way through it: `Catalog.resolve(name, version)` gives a `ServedModel`;
`ServedModel.submit(Pass.X, rows)` queues the rows on its `MicroBatcher`, which runs `run_pass`
for `Pass.X` over a batch in a worker thread of the `Runtime`. What goes wrong is a `CoreError`
(`errors.py`); each protocol maps those to its own replies (service/errors.py for HTTP).
"""

from service.core.batcher import BatcherClosed, MicroBatcher, QueueFull
from service.core.catalog import Catalog
from service.core.errors import (
    CoreError,
    InvalidModelName,
    Overloaded,
    UndecodableLatents,
    UnknownModel,
    UnknownVersion,
)
from service.core.forward import (
    DECODABLE,
    LATENT_LIMIT,
    Outputs,
    Pass,
    as_unit_floats,
    check_decodable,
    check_latents,
    run_pass,
    warm,
)
from service.core.runtime import LARGE_PASS, Batching, ModelMetrics, Runtime, on_torch_threads
from service.core.served import ServedModel

__all__ = [
    "DECODABLE",
    "LARGE_PASS",
    "LATENT_LIMIT",
    "BatcherClosed",
    "Batching",
    "Catalog",
    "CoreError",
    "InvalidModelName",
    "MicroBatcher",
    "ModelMetrics",
    "Outputs",
    "Overloaded",
    "Pass",
    "QueueFull",
    "Runtime",
    "ServedModel",
    "UndecodableLatents",
    "UnknownModel",
    "UnknownVersion",
    "as_unit_floats",
    "check_decodable",
    "check_latents",
    "on_torch_threads",
    "run_pass",
    "warm",
]
