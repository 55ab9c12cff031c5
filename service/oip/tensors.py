"""Tensors of the protocol: datatypes, a parsed inference request, and the response (JSON, or binary per Triton).

Raw tensor data is row-major and little-endian, in the order of the JSON header's tensors. A response
with any binary output is the JSON header, then each binary output's bytes; `Inference-Header-Content-Length`
gives the header's length, and the content type is application/octet-stream (else application/json).
"""

from __future__ import annotations

import sys
from typing import Any, NamedTuple

import numpy as np
import orjson
from starlette.responses import Response

HEADER_LENGTH = "inference-header-content-length"
DTYPES = {
    name: np.dtype(code)
    for name, code in [("BOOL", "?"), ("UINT8", "u1"), ("UINT16", "<u2"), ("UINT32", "<u4"), ("UINT64", "<u8"),
                       ("INT8", "i1"), ("INT16", "<i2"), ("INT32", "<i4"), ("INT64", "<i8"), ("FP16", "<f2"),
                       ("FP32", "<f4"), ("FP64", "<f8")]
}  # fmt: skip
DATATYPE_OF = {dtype.newbyteorder("="): name for name, dtype in DTYPES.items()}
BIG_ENDIAN_HOST = sys.byteorder == "big"


class Tensor(NamedTuple):
    name: str
    datatype: str
    shape: tuple[int, ...]
    array: np.ndarray  # of `shape`, the datatype's numpy type (read-only over the body when sent as binary)


class Output(NamedTuple):
    name: str
    binary: bool


class InferRequest(NamedTuple):
    id: str | None
    inputs: list[Tensor]
    outputs: tuple[Output, ...] | None  # None: the model's default outputs, each `binary_default`
    binary_default: bool


def _little_endian(array: np.ndarray) -> np.ndarray:
    """The array as the binary extension sends it: C-contiguous, little-endian (a copy only if it is not)."""
    if array.dtype.byteorder == ">" or (BIG_ENDIAN_HOST and array.dtype.byteorder == "="):
        array = array.astype(array.dtype.newbyteorder("<"))
    return np.ascontiguousarray(array)


def infer_response(
    model: str, version: int, request_id: str | None, outputs: list[tuple[Output, np.ndarray]]
) -> Response:
    """The response to an inference request: `outputs` in the order asked for, each in JSON or binary."""
    described, binary = [], []
    for output, array in outputs:
        entry: dict[str, Any] = {"name": output.name, "datatype": DATATYPE_OF[array.dtype], "shape": list(array.shape)}
        if output.binary:
            binary.append(_little_endian(array))
            entry["parameters"] = {"binary_data_size": binary[-1].nbytes}
        else:
            entry["data"] = np.ascontiguousarray(array).reshape(-1)  # orjson writes C-contiguous arrays
        described.append(entry)
    header: dict[str, Any] = {"model_name": model, "model_version": str(version), "outputs": described}
    if request_id is not None:
        header["id"] = request_id
    text = orjson.dumps(header, option=orjson.OPT_SERIALIZE_NUMPY)
    if not binary:
        return Response(text, media_type="application/json")
    body = bytearray(len(text) + sum(array.nbytes for array in binary))  # each tensor copied once, into the body
    body[: len(text)] = text
    offset = len(text)
    for array in binary:
        body[offset : offset + array.nbytes] = array.data.cast("B")
        offset += array.nbytes
    return Response(memoryview(body), media_type="application/octet-stream",
                    headers={"Inference-Header-Content-Length": str(len(text))})  # fmt: skip
