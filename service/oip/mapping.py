"""A served model as a V2 model: its tensors, and the forward pass that an inference request needs.

One V2 model per model name, each version of it a V2 version. A request sends exactly one input:

    images    FP32 in [0, 1], or UINT8 0-255; shape [N, 784] or [N, 28, 28]
    latents   FP32, shape [N, p]

and asks for outputs of that input (its `outputs`; without them, the defaults marked *):

    from images:   latents* FP32 [N, p], reconstructions* FP32 [N, 784], mse* FP32 [N],
                   reconstructions_uint8 UINT8 [N, 784] (0-255, rounded half to even)
    from latents:  images* FP32 [N, 784], images_uint8 UINT8 [N, 784]

Each request costs one forward pass, of the kind that computes what it asks for and little else,
as the REST endpoints do: latents alone ENCODE; reconstructions RECONSTRUCT, as uint8 only
RECONSTRUCT_PIXELS, with mse RECONSTRUCT_MSE; latents with any of those RECONSTRUCT_ALL; from
latents DECODE, or DECODE_PIXELS for images_uint8 alone. A uint8 output beside its float one is
quantised from the floats, as the _PIXELS passes do it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from models.images import PIXELS, SIDE
from service.core import Outputs, Pass
from service.errors import PayloadTooLarge
from service.oip.errors import BadRequest
from service.oip.tensors import InferRequest, Output

IMAGES, LATENTS = "images", "latents"


@dataclass(frozen=True)
class TensorInfo:
    name: str
    datatype: str
    shape: tuple[int, ...]  # -1: the batch
    note: str  # what the model metadata's parameters say of it

    def metadata(self) -> dict[str, object]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


def inputs(latent_size: int) -> list[TensorInfo]:
    return [
        TensorInfo(IMAGES, "FP32", (-1, PIXELS), "FP32 in [0, 1] or UINT8 0-255, shape [-1, 784] or [-1, 28, 28]; "
                   "gives latents, reconstructions, reconstructions_uint8, mse"),
        TensorInfo(LATENTS, "FP32", (-1, latent_size), "gives images, images_uint8"),
    ]  # fmt: skip


def outputs(latent_size: int) -> list[TensorInfo]:
    return [
        TensorInfo("latents", "FP32", (-1, latent_size), "from images: the codes (default)"),
        TensorInfo("reconstructions", "FP32", (-1, PIXELS), "from images: in [0, 1] (default)"),
        TensorInfo("reconstructions_uint8", "UINT8", (-1, PIXELS), "from images: 0-255"),
        TensorInfo("mse", "FP32", (-1,), "from images: mean squared error per image (default)"),
        TensorInfo("images", "FP32", (-1, PIXELS), "from latents: decoded, in [0, 1] (default)"),
        TensorInfo("images_uint8", "UINT8", (-1, PIXELS), "from latents: decoded, 0-255"),
    ]


OUTPUTS_OF = {IMAGES: ("latents", "reconstructions", "reconstructions_uint8", "mse"),
              LATENTS: ("images", "images_uint8")}  # fmt: skip
DEFAULT_OUTPUTS = {IMAGES: ("latents", "reconstructions", "mse"), LATENTS: ("images",)}
DATATYPES = {IMAGES: ("FP32", "UINT8"), LATENTS: ("FP32",)}
IMAGE_WIDTHS = ((PIXELS,), (SIDE, SIDE))


class Plan(NamedTuple):
    """What one request computes: its input rows, the outputs asked for, the pass that gives them."""

    source: str  # IMAGES or LATENTS
    rows: np.ndarray  # (N, 784) images, float32 or uint8 (scaled in the pass), or (N, p) latents
    outputs: Sequence[Output]
    what: Pass  # the forward pass that gives them


def plan(request: InferRequest, latent_size: int, max_rows: int) -> Plan:
    """The request checked against the model: one known input, a datatype and shape it takes, outputs of it."""
    if len(request.inputs) != 1:
        names = ", ".join(repr(t.name) for t in request.inputs)
        raise BadRequest(f"send exactly one input, 'images' or 'latents'; got {names}")
    tensor = request.inputs[0]
    if tensor.name not in DATATYPES:
        raise BadRequest(f"unknown input {tensor.name!r}: this model takes 'images' or 'latents'")
    if tensor.datatype not in DATATYPES[tensor.name]:
        raise BadRequest(f"input {tensor.name!r} must be {' or '.join(DATATYPES[tensor.name])}, not {tensor.datatype}")
    widths = IMAGE_WIDTHS if tensor.name == IMAGES else ((latent_size,),)
    if tensor.shape[1:] not in widths:
        expected = " or ".join(str([-1, *w]) for w in widths)
        raise BadRequest(f"input {tensor.name!r} has shape {list(tensor.shape)}; expected {expected}")
    count = tensor.shape[0]
    if count == 0:
        raise BadRequest(f"empty batch: send at least one row of {tensor.name!r}")
    if count > max_rows:
        message = f"{count} rows of {tensor.name!r} in one request; the limit is {max_rows}"
        raise PayloadTooLarge(message, limit=max_rows)
    rows = _checked(tensor.name, tensor.array.reshape(count, -1))
    wanted = request.outputs or [Output(name, request.binary_default) for name in DEFAULT_OUTPUTS[tensor.name]]
    for output in wanted:
        if output.name not in OUTPUTS_OF[tensor.name]:
            other = next((source for source, names in OUTPUTS_OF.items() if output.name in names), None)
            why = f"it needs input {other!r}" if other else "unknown output"
            raise BadRequest(f"output {output.name!r} cannot be given for input {tensor.name!r} ({why}); "
                             f"outputs of {tensor.name!r}: {', '.join(OUTPUTS_OF[tensor.name])}")  # fmt: skip
    return Plan(tensor.name, rows, wanted, _pass(tensor.name, {o.name for o in wanted}))


def _checked(source: str, rows: np.ndarray) -> np.ndarray:
    """Rows the passes may take: pixels in range, finite latents; float rows writable (torch warns of the others)."""
    if rows.dtype == np.uint8:
        return rows  # read-only over the body, and scaled to new floats in the pass
    ok = (rows >= 0) & (rows <= 1) if source == IMAGES else np.isfinite(rows)
    bad = np.flatnonzero(~ok.all(axis=1))
    if len(bad):
        what = "values outside [0, 1]" if source == IMAGES else "NaN or infinity"
        raise BadRequest(f"{source}[{bad[0]}] has {what}")
    return rows if rows.flags.writeable else rows.copy()


def _pass(source: str, names: set[str]) -> Pass:
    """The one forward pass that gives every output in `names`, and as little else as it can."""
    if source == LATENTS:
        return Pass.DECODE_PIXELS if names == {"images_uint8"} else Pass.DECODE
    if names == {"latents"}:
        return Pass.ENCODE
    if "latents" in names:
        return Pass.RECONSTRUCT_ALL
    if "mse" in names:
        return Pass.RECONSTRUCT_MSE
    return Pass.RECONSTRUCT_PIXELS if names == {"reconstructions_uint8"} else Pass.RECONSTRUCT


def results(plan: Plan, outputs: Outputs) -> list[tuple[Output, np.ndarray]]:
    """The requested outputs from the pass's outputs, in the order asked for."""
    found = []
    for output in plan.outputs:
        key = {"latents": "codes", "mse": "mse"}.get(output.name, "images")
        array = outputs[key]
        if output.name.endswith("_uint8") and array.dtype != np.uint8:
            array = np.clip(np.rint(array * 255), 0, 255).astype(np.uint8)  # as the _PIXELS passes round
        found.append((output, array))
    return found
