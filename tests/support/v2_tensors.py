"""Requests and responses of the Open Inference Protocol, built and read by hand (what a client library does)."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

DATATYPES = {np.dtype(np.float32): "FP32", np.dtype(np.uint8): "UINT8"}
NUMPY = {"FP32": np.float32, "UINT8": np.uint8}


def tensor(name: str, array: np.ndarray, binary: bool = False) -> tuple[dict[str, Any], bytes]:
    """An input tensor's JSON entry, and its bytes when sent as binary data."""
    entry: dict[str, Any] = {"name": name, "shape": list(array.shape), "datatype": DATATYPES[array.dtype]}
    if not binary:
        return entry | {"data": array.reshape(-1).tolist()}, b""
    raw = np.ascontiguousarray(array).tobytes()
    return entry | {"parameters": {"binary_data_size": len(raw)}}, raw


def request(
    inputs: list[tuple[str, np.ndarray]],
    binary: bool = False,
    outputs: list[str | tuple[str, bool]] | None = None,
    **fields: Any,
) -> tuple[bytes, dict[str, str]]:
    """An inference request's body and headers; `outputs` names, or (name, binary_data) pairs."""
    entries, blobs = zip(*(tensor(name, array, binary) for name, array in inputs), strict=True)
    header: dict[str, Any] = {"inputs": list(entries), **fields}
    if outputs is not None:
        header["outputs"] = [
            {"name": o} if isinstance(o, str) else {"name": o[0], "parameters": {"binary_data": o[1]}} for o in outputs
        ]
    text = orjson.dumps(header)
    if not binary:
        return text, {"content-type": "application/json"}
    return text + b"".join(blobs), {"inference-header-content-length": str(len(text))}


def read(content: bytes, header_length: str | None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A response's JSON header and its outputs as arrays, whether in JSON or binary."""
    length = int(header_length) if header_length is not None else len(content)
    header = orjson.loads(content[:length])
    arrays, offset = {}, length
    for output in header["outputs"]:
        dtype = NUMPY[output["datatype"]]
        size = output.get("parameters", {}).get("binary_data_size")
        if size is None:
            arrays[output["name"]] = np.asarray(output["data"], dtype=dtype).reshape(output["shape"])
        else:
            arrays[output["name"]] = np.frombuffer(content[offset : offset + size], dtype).reshape(output["shape"])
            offset += size
    assert offset == len(content) or header_length is None
    return header, arrays
