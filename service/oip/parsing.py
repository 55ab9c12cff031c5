"""An inference request's body: its JSON header (orjson into plain dicts, no pydantic), then any binary tensors.

Checked here: the envelope (fields, parameters, datatypes, shapes against the data or the byte
counts, those against the bytes after the header). Which inputs and outputs a model has is for
service/oip/mapping.py. Binary data becomes arrays over the body's own bytes (`numpy.frombuffer`).
The common case costs a few set comparisons; what is wrong is looked for only once something is.

Parameters: `binary_data_output` (request), `binary_data_size` (input), `binary_data` (output) are
honoured; the request's `priority` and `timeout` are accepted and ignored (one queue per model
version, no deadline); sequence batching, shared memory and classification are refused with the
reason; any other parameter is refused as unknown.
"""

from __future__ import annotations

import math
from functools import lru_cache
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np
import orjson

from service.oip.errors import BadRequest
from service.oip.tensors import DTYPES, InferRequest, Output, Tensor

REQUEST_FIELDS = frozenset({"id", "parameters", "inputs", "outputs"})
INPUT_FIELDS = frozenset({"name", "shape", "datatype", "parameters", "data"})
OUTPUT_FIELDS = frozenset({"name", "parameters"})
REQUEST_PARAMETERS = frozenset({"binary_data_output", "priority", "timeout"})  # the last two ignored
INPUT_PARAMETERS = frozenset({"binary_data_size"})
OUTPUT_PARAMETERS = frozenset({"binary_data"})
REFUSED_PARAMETERS = {  # by prefix
    "sequence_": "sequence batching is not supported: the models are stateless",
    "shared_memory_": "the shared-memory extensions are not supported: send the data in the body",
    "classification": "the classification extension is not supported",
}
NONE: MappingProxyType[str, Any] = MappingProxyType({})
CACHED_HEADERS = 256  # parsed headers kept (see parse_request)
CACHED_HEADER_BYTES = 4096


class _Input(NamedTuple):
    """An input as the header gives it: its data from JSON (`array`), or `size` bytes of the binary data."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    dtype: np.dtype
    size: int | None
    array: np.ndarray | None


class _Header(NamedTuple):
    id: str | None
    inputs: tuple[_Input, ...]
    outputs: tuple[Output, ...] | None
    binary_default: bool


def parse_request(body: bytes, header_length: str | None) -> InferRequest:
    """The body of POST .../infer, and its Inference-Header-Content-Length header if any.

    A header without JSON tensor data is a pure function of its bytes, and clients sending the same
    shapes again send the same header (tritonclient does, unless given request ids): its parse is
    cached (CACHED_HEADERS of them, up to CACHED_HEADER_BYTES each). The tensors are read anew.
    """
    header, binary = _split(body, header_length)
    # no tensor data in it (not even as "\u0064ata"): nothing in a cached header's parse belongs to one request
    cacheable = len(header) <= CACHED_HEADER_BYTES and b'"data"' not in header and b"\\u" not in header
    parsed = _cached_header(header) if cacheable else _header(header)
    tensors, offset = [], 0
    for given in parsed.inputs:
        array = given.array
        if array is None:  # `size` bytes of the binary data
            size = given.size or 0
            if offset + size > len(binary):
                raise BadRequest(f"input {given.name!r}: binary_data_size {size} but only {len(binary) - offset} "
                                 "bytes of binary data remain after the JSON header (check "
                                 "Inference-Header-Content-Length)")  # fmt: skip
            array = np.frombuffer(binary, given.dtype, math.prod(given.shape), offset).reshape(given.shape)
            offset += size
        tensors.append(Tensor(given.name, given.datatype, given.shape, array))
    if offset != len(binary):
        raise BadRequest(f"{len(binary)} bytes of binary data follow the JSON header, but the inputs' "
                         f"binary_data_size add up to {offset}")  # fmt: skip
    return InferRequest(parsed.id, tensors, parsed.outputs, parsed.binary_default)


def _header(header: bytes) -> _Header:
    try:
        payload = orjson.loads(header)
    except orjson.JSONDecodeError as e:
        raise BadRequest(f"malformed JSON in the inference request: {e}") from None
    if type(payload) is not dict:
        raise BadRequest("the inference request must be a JSON object")
    if not payload.keys() <= REQUEST_FIELDS:
        _refuse_unknown(payload, REQUEST_FIELDS, "field of the inference request")
    request_id = payload.get("id")
    if request_id is not None and type(request_id) is not str:
        raise BadRequest("'id' must be a string")
    parameters = _parameters(payload.get("parameters"), REQUEST_PARAMETERS, "the request")
    binary_default = _flag(parameters, "binary_data_output", False, "the request")
    inputs = payload.get("inputs")
    if type(inputs) is not list or not inputs:
        raise BadRequest("'inputs' must be a non-empty list")
    given = tuple(_input(entry, index) for index, entry in enumerate(inputs))
    outputs = payload.get("outputs")
    if outputs is not None and type(outputs) is not list:
        raise BadRequest("'outputs' must be a list")
    requested = tuple(_output(entry, index, binary_default) for index, entry in enumerate(outputs or ()))
    _refuse_repeated("input", [i.name for i in given])
    _refuse_repeated("output", [o.name for o in requested])
    return _Header(request_id, given, requested or None, binary_default)


_cached_header = lru_cache(maxsize=CACHED_HEADERS)(_header)


def _split(body: bytes, header_length: str | None) -> tuple[bytes, bytes | memoryview]:
    if header_length is None:
        return body, b""
    if not header_length.isdigit() or int(header_length) > len(body):
        raise BadRequest(f"Inference-Header-Content-Length {header_length!r} must be a byte count within the "
                         f"body's {len(body)} bytes")  # fmt: skip
    length = int(header_length)
    return body[:length], memoryview(body)[length:]  # the tensors' bytes: not copied


def _refuse_repeated(what: str, names: list[str]) -> None:
    """Each name once."""
    if len(set(names)) < len(names):
        raise BadRequest(f"{what} {next(n for n in names if names.count(n) > 1)!r} given more than once")


def _refuse_unknown(entry: dict[str, Any], known: frozenset[str], what: str) -> None:
    unknown = next(key for key in entry if key not in known)
    raise BadRequest(f"unknown {what}: {unknown!r} (known: {', '.join(sorted(known))})")


def _parameters(parameters: Any, known: frozenset[str], where: str, name: str = "") -> Any:
    """The parameters object (none: empty), if every key in it is `known`."""
    if parameters is None:
        return NONE
    if type(parameters) is dict and parameters.keys() <= known:
        return parameters
    where = f"{where} {name!r}" if name else where
    if type(parameters) is not dict:
        raise BadRequest(f"the parameters of {where} must be an object")
    key = next(key for key in parameters if key not in known)
    refused = next((why for prefix, why in REFUSED_PARAMETERS.items() if key.startswith(prefix)), None)
    if refused is not None:
        raise BadRequest(f"parameter {key!r} of {where}: {refused}")
    raise BadRequest(f"unknown parameter {key!r} of {where} (known: {', '.join(sorted(known))})")


def _flag(parameters: Any, key: str, default: bool, where: str, name: str = "") -> bool:
    value = parameters.get(key, default)
    if type(value) is not bool:
        raise BadRequest(f"parameter {key!r} of {f'{where} {name!r}' if name else where} must be true or false")
    return value


def _input(entry: Any, index: int) -> _Input:
    """One input tensor as described: with its data if given in JSON, else the byte count of its binary data."""
    if type(entry) is not dict or type(name := entry.get("name")) is not str:
        raise BadRequest(f"inputs[{index}] must be an object with a 'name'")
    if not entry.keys() <= INPUT_FIELDS:
        _refuse_unknown(entry, INPUT_FIELDS, f"field of input {name!r}")
    shape, datatype = entry.get("shape"), entry.get("datatype", "")
    if type(shape) is not list or not all(type(size) is int and size >= 0 for size in shape):
        raise BadRequest(f"input {name!r}: 'shape' must be a list of sizes (non-negative integers)")
    dtype = DTYPES.get(datatype) if type(datatype) is str else None
    if dtype is None or type(datatype) is not str:
        raise BadRequest(f"input {name!r}: datatype {datatype!r} is not supported (supported: {', '.join(DTYPES)})")
    size = _parameters(entry.get("parameters"), INPUT_PARAMETERS, "input", name).get("binary_data_size")
    if size is None:
        if "data" not in entry:
            raise BadRequest(f"input {name!r} has no data: give 'data' or parameters.binary_data_size")
        array = _from_json(entry["data"], name, datatype, dtype, shape)
        return _Input(name, datatype, tuple(shape), dtype, None, array)
    if type(size) is not int or size < 0:
        raise BadRequest(f"input {name!r}: binary_data_size must be a byte count")
    if "data" in entry:
        raise BadRequest(f"input {name!r} has both 'data' and parameters.binary_data_size: give one")
    if size != math.prod(shape) * dtype.itemsize:
        raise BadRequest(f"input {name!r}: binary_data_size {size} disagrees with shape {shape} of {datatype} "
                         f"({math.prod(shape) * dtype.itemsize} bytes)")  # fmt: skip
    return _Input(name, datatype, tuple(shape), dtype, size, None)


def _from_json(data: Any, name: str, datatype: str, dtype: np.dtype, shape: list[int]) -> np.ndarray:
    """'data', flat or nested in row-major order, as an array of `shape` and `dtype`; values that do not fit refused."""
    try:
        values = np.asarray(data)
    except ValueError:  # ragged
        values = np.empty(0, dtype=object)
    kind = {"b": "b", "u": "iu", "i": "iu", "f": "fiu"}[dtype.kind]  # what JSON values each datatype takes
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
    if type(entry) is not dict or type(name := entry.get("name")) is not str:
        raise BadRequest(f"outputs[{index}] must be an object with a 'name'")
    if not entry.keys() <= OUTPUT_FIELDS:
        _refuse_unknown(entry, OUTPUT_FIELDS, f"field of output {name!r}")
    parameters = _parameters(entry.get("parameters"), OUTPUT_PARAMETERS, "output", name)
    return Output(name, _flag(parameters, "binary_data", binary_default, "output", name))
