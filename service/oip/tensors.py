"""Inference requests and responses of the protocol: a JSON header, then (Triton's binary extension) raw tensors.

Parsing checks the envelope only (fields, parameters, datatypes, shapes against data or byte counts);
which tensors a model takes is service/oip/mapping.py's business. The header is parsed with orjson
into plain dicts, never into pydantic models; binary data becomes numpy arrays over the body's own
bytes (`numpy.frombuffer`, no copy). Raw tensors are little-endian, row-major.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from starlette.responses import Response

from service.oip.errors import BadRequest

HEADER_LENGTH = "inference-header-content-length"
DTYPES = {
    name: np.dtype(code)
    for name, code in [("BOOL", "?"), ("UINT8", "u1"), ("UINT16", "<u2"), ("UINT32", "<u4"), ("UINT64", "<u8"),
                       ("INT8", "i1"), ("INT16", "<i2"), ("INT32", "<i4"), ("INT64", "<i8"), ("FP16", "<f2"),
                       ("FP32", "<f4"), ("FP64", "<f8")]
}  # fmt: skip
DATATYPE_OF = {dtype.newbyteorder("="): name for name, dtype in DTYPES.items()}
# request parameters: honoured, ignored (documented in the README), or refused with the reason
REQUEST_PARAMETERS = {"binary_data_output"}
IGNORED_PARAMETERS = {"priority", "timeout"}  # one queue per model version; no per-request deadline
REFUSED_PARAMETERS = {  # by name, or by prefix for shared_memory_*
    "sequence_": "sequence batching is not supported: the models are stateless",
    "shared_memory_": "the shared-memory extensions are not supported: send the data in the body",
    "classification": "the classification extension is not supported",
}


@dataclass(frozen=True)
class Tensor:
    name: str
    datatype: str
    shape: tuple[int, ...]
    array: np.ndarray  # of `shape`, the datatype's numpy type


@dataclass(frozen=True)
class Output:
    name: str
    binary: bool


@dataclass(frozen=True)
class InferRequest:
    id: str | None
    inputs: list[Tensor]
    outputs: list[Output] | None  # None: the model's default outputs, each `binary_default`
    binary_default: bool


def parse_request(body: bytes, header_length: str | None) -> InferRequest:
    """The body of POST .../infer, and its Inference-Header-Content-Length header if any."""
    header, binary = _split(body, header_length)
    try:
        payload = orjson.loads(header)
    except orjson.JSONDecodeError as e:
        raise BadRequest(f"malformed JSON in the inference request: {e}") from None
    if not isinstance(payload, dict):
        raise BadRequest("the inference request must be a JSON object")
    _refuse_unknown(payload, {"id", "parameters", "inputs", "outputs"}, "field of the inference request")
    request_id = payload.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest("'id' must be a string")
    parameters = _parameters(payload, "the request", REQUEST_PARAMETERS | IGNORED_PARAMETERS)
    binary_default = _flag(parameters, "binary_data_output", "the request")
    inputs = _list(payload.get("inputs"), "'inputs'", required=True)
    view, offset, tensors = memoryview(binary), 0, []
    for index, entry in enumerate(inputs):
        tensor, offset = _input(entry, index, view, offset)
        tensors.append(tensor)
    if offset != len(binary):
        raise BadRequest(f"{len(binary)} bytes of binary data follow the JSON header, but the inputs' "
                         f"binary_data_size add up to {offset}")  # fmt: skip
    _refuse_repeated([t.name for t in tensors], "input")
    outputs = _list(payload.get("outputs"), "'outputs'", required=False)
    requested = [_output(entry, index, binary_default) for index, entry in enumerate(outputs)]
    _refuse_repeated([o.name for o in requested], "output")
    return InferRequest(request_id, tensors, requested or None, binary_default)


def _split(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    if not header_length.strip().isdigit() or int(header_length) > len(body):
        raise BadRequest(f"Inference-Header-Content-Length {header_length!r} must be a byte count within the "
                         f"body's {len(body)} bytes")  # fmt: skip
    length = int(header_length)
    return body[:length], body[length:]


def _refuse_unknown(entry: dict[str, Any], known: set[str], what: str) -> None:
    for key in entry:
        if key not in known:
            raise BadRequest(f"unknown {what}: {key!r} (known: {', '.join(sorted(known))})")


def _list(value: Any, what: str, required: bool) -> list[Any]:
    if value is None and not required:
        return []
    if not isinstance(value, list) or (required and not value):
        raise BadRequest(f"{what} must be a {'non-empty ' if required else ''}list")
    return value


def _parameters(entry: dict[str, Any], where: str, known: set[str]) -> dict[str, Any]:
    parameters = entry.get("parameters", {})
    if not isinstance(parameters, dict):
        raise BadRequest(f"the parameters of {where} must be an object")
    for key in parameters:
        refused = next((why for prefix, why in REFUSED_PARAMETERS.items() if key.startswith(prefix)), None)
        if refused is not None:
            raise BadRequest(f"parameter {key!r} of {where}: {refused}")
        if key not in known:
            raise BadRequest(f"unknown parameter {key!r} of {where} (known: {', '.join(sorted(known))})")
    return parameters


def _flag(parameters: dict[str, Any], key: str, where: str, default: bool = False) -> bool:
    value = parameters.get(key, default)
    if not isinstance(value, bool):
        raise BadRequest(f"parameter {key!r} of {where} must be true or false")
    return value


def _input(entry: Any, index: int, binary: memoryview, offset: int) -> tuple[Tensor, int]:
    """One input tensor, its data from JSON or from the binary data at `offset`; and the next offset."""
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise BadRequest(f"inputs[{index}] must be an object with a 'name'")
    name = entry["name"]
    _refuse_unknown(entry, {"name", "shape", "datatype", "parameters", "data"}, f"field of input {name!r}")
    shape, datatype = entry.get("shape"), str(entry.get("datatype"))
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in shape):  # fmt: skip
        raise BadRequest(f"input {name!r}: 'shape' must be a list of sizes (non-negative integers)")
    dtype = DTYPES.get(datatype) if isinstance(entry.get("datatype"), str) else None
    if dtype is None:
        raise BadRequest(f"input {name!r}: datatype {entry.get('datatype')!r} is not supported "
                         f"(supported: {', '.join(DTYPES)})")  # fmt: skip
    size = _binary_size(_parameters(entry, f"input {name!r}", {"binary_data_size"}), name)
    count = math.prod(shape)
    if size is None:
        if "data" not in entry:
            raise BadRequest(f"input {name!r} has no data: give 'data' or parameters.binary_data_size")
        return Tensor(name, datatype, tuple(shape), _from_json(entry["data"], name, datatype, dtype, shape)), offset
    if "data" in entry:
        raise BadRequest(f"input {name!r} has both 'data' and parameters.binary_data_size: give one")
    if size != count * dtype.itemsize:
        raise BadRequest(f"input {name!r}: binary_data_size {size} disagrees with shape {shape} of {datatype} "
                         f"({count * dtype.itemsize} bytes)")  # fmt: skip
    if offset + size > len(binary):
        raise BadRequest(f"input {name!r}: binary_data_size {size} but only {len(binary) - offset} bytes of binary "
                         "data remain after the JSON header (check Inference-Header-Content-Length)")  # fmt: skip
    array = np.frombuffer(binary, dtype, count, offset).reshape(shape)
    return Tensor(name, datatype, tuple(shape), array), offset + size


def _binary_size(parameters: dict[str, Any], name: str) -> int | None:
    size = parameters.get("binary_data_size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise BadRequest(f"input {name!r}: binary_data_size must be a byte count")
    return size


def _from_json(data: Any, name: str, datatype: str, dtype: np.dtype, shape: list[int]) -> np.ndarray:
    """'data', flat or nested in row-major order, as an array of `shape` and `dtype`; values that do not fit refused."""
    try:
        values = np.asarray(data)
    except ValueError:  # ragged
        values = np.empty(0, dtype=object)
    kind = {"?": "b", "u": "iu", "i": "iu", "f": "fiu"}[dtype.kind]
    if values.dtype.kind not in kind or not (values.ndim == 1 or list(values.shape) == shape):
        raise BadRequest(f"input {name!r}: 'data' must be a list of {datatype} values, flat or nested as {shape}")
    if values.size != math.prod(shape):
        raise BadRequest(f"input {name!r}: {values.size} values in 'data' for shape {shape}")
    if dtype.kind in "iu" and values.size:
        limits = np.iinfo(dtype)
        if values.min() < limits.min or values.max() > limits.max:
            raise BadRequest(f"input {name!r}: values outside {datatype}'s range {limits.min} to {limits.max}")
    return values.astype(dtype.newbyteorder("="), copy=False).reshape(shape)


def _output(entry: Any, index: int, binary_default: bool) -> Output:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise BadRequest(f"outputs[{index}] must be an object with a 'name'")
    name = entry["name"]
    _refuse_unknown(entry, {"name", "parameters"}, f"field of output {name!r}")
    parameters = _parameters(entry, f"output {name!r}", {"binary_data"})
    return Output(name, _flag(parameters, "binary_data", f"output {name!r}", binary_default))


def _refuse_repeated(names: list[str], what: str) -> None:
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise BadRequest(f"{what} {repeated[0]!r} given more than once")


def infer_response(
    model: str, version: int, request_id: str | None, outputs: list[tuple[Output, np.ndarray]]
) -> Response:
    """The response: JSON, or with any binary output the JSON header, then the binary outputs in order."""
    described, blobs = [], []
    for output, array in outputs:
        entry: dict[str, Any] = {"name": output.name, "datatype": DATATYPE_OF[array.dtype], "shape": list(array.shape)}
        if output.binary:
            blob = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = np.ascontiguousarray(array).reshape(-1)
        described.append(entry)
    header: dict[str, Any] = {"model_name": model, "model_version": str(version), "outputs": described}
    if request_id is not None:
        header["id"] = request_id
    text = orjson.dumps(header, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return Response(text, media_type="application/json")
    return Response(b"".join([text, *blobs]), media_type="application/octet-stream",
                    headers={"Inference-Header-Content-Length": str(len(text))})  # fmt: skip
