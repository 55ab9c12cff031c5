"""The Open Inference Protocol beside the REST API on one server: V2 binary and JSON against REST raw and JSON.

Starts the service once (default settings, bench/serving.py's launcher), then loads it with wrk (or
httpx) for each cell (operation, images per request, connections), each protocol in turn, with
equivalent requests: the same MNIST digits, and the same forward pass on the server:

- REST raw: uint8 bytes in, and out (`/reconstruct`: uint8 pixels; `/encode`: float32 codes);
- V2 binary: the same uint8 pixels as a binary UINT8 `images` tensor (Inference-Header-Content-Length),
  `reconstructions_uint8` or `latents` back as binary data;
- REST JSON: `{"images": [[784 floats]]}`, JSON back (`/reconstruct`: reconstructions and MSEs);
- V2 JSON: the same floats as an FP32 `images` tensor's `data`, JSON back (`reconstructions` and
  `mse`, or `latents`).

`--repeats` rounds, the protocols in turn and in reverse order every other round (slow drifts in
the machine's load cancel); the tables show medians, and each protocol's req/s and server CPU per
request against REST raw's (and req/s against REST JSON's) in the same round: the median of the
per-round ratios. The target: V2 binary within 10% of REST raw (>= 0.9x its req/s) in every cell.
On a shared machine req/s follows the CPU share the server gets from one second to the next;
server CPU per request (from /proc) follows the work each request costs, and moves much less.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from bench import serving
from bench.common import REPO, Table, base_parser, default_data_dir, emit, fmt, machine, median, report
from bench.loadgen import LoadResult, Request, default_client, post_once

PROTOCOLS = ("REST raw", "V2 binary", "REST JSON", "V2 JSON")
OUTPUTS = {"reconstruct": ["reconstructions_uint8"], "encode": ["latents"]}  # as REST raw answers
JSON_OUTPUTS = {"reconstruct": ["reconstructions", "mse"], "encode": ["latents"]}  # as REST JSON answers
INFER = f"/v2/models/{serving.MODEL}/infer"


def request_for(protocol: str, operation: str, pixels: np.ndarray) -> Request:
    images = len(pixels)
    floats = pixels.astype(np.float32) / 255.0
    if protocol == "REST raw":
        return Request(f"/{operation}", "application/octet-stream", pixels.tobytes(), images,
                       accept="application/octet-stream")  # fmt: skip
    if protocol == "REST JSON":
        body = orjson.dumps({"images": floats}, option=orjson.OPT_SERIALIZE_NUMPY)
        return Request(f"/{operation}", "application/json", body, images)
    tensor: dict[str, Any] = {"name": "images", "shape": list(pixels.shape)}
    if protocol == "V2 JSON":
        tensor |= {"datatype": "FP32", "data": floats.reshape(-1)}
        outputs = [{"name": name} for name in JSON_OUTPUTS[operation]]
        body = orjson.dumps({"inputs": [tensor], "outputs": outputs}, option=orjson.OPT_SERIALIZE_NUMPY)
        return Request(INFER, "application/json", body, images)
    tensor |= {"datatype": "UINT8", "parameters": {"binary_data_size": pixels.nbytes}}
    outputs = [{"name": name, "parameters": {"binary_data": True}} for name in OUTPUTS[operation]]
    header = orjson.dumps({"inputs": [tensor], "outputs": outputs})
    return Request(INFER, "application/octet-stream", header + pixels.tobytes(), images,
                   headers=(("Inference-Header-Content-Length", str(len(header))),))  # fmt: skip


def check(url: str, protocol: str, operation: str, request: Request) -> None:
    """One request before timing: a 200 with as many results as images, so that errors cannot pass for speed."""
    body, headers = post_once(url, request)
    length = headers.get("Inference-Header-Content-Length")
    width = {"reconstruct": 784, "encode": 4 * serving.LATENT_SIZE}[operation]
    if protocol == "REST raw":
        ok = len(body) == request.images * width
    elif protocol == "REST JSON":
        ok = len(orjson.loads(body)["reconstructions" if operation == "reconstruct" else "latents"]) == request.images
    else:
        outputs = orjson.loads(body[: int(length) if length else None])["outputs"]
        ok = all(output["shape"][0] == request.images for output in outputs)
        ok = ok and (length is None or len(body) - int(length) == request.images * width)
    if not ok:
        raise RuntimeError(f"unexpected response to {protocol} {operation}: {body[:200]!r}")


def measure(args: argparse.Namespace, pixels: np.ndarray) -> dict[tuple[str, int, str], list[LoadResult]]:
    args.current_device = "cpu" if args.device == "cpu" else args.device
    cells = [(operation, images) for images in args.images for operation in args.operations]
    samples: dict[tuple[str, int, str], list[LoadResult]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-v2-") as logs, \
            serving.running([serving.SERVERS["default"]], args, Path(logs)) as servers:  # fmt: skip
        server = servers["default"]
        requests = {(o, n, p): request_for(p, o, pixels[:n]) for o, n in cells for p in PROTOCOLS}
        for (operation, _, protocol), request in requests.items():
            check(server.url, protocol, operation, request)
        for repeat in range(args.repeats):
            for operation, images in cells:
                for protocol in PROTOCOLS if repeat % 2 == 0 else PROTOCOLS[::-1]:  # drift cancels over two rounds
                    cell = serving.Cell(operation, protocol, images, args.concurrency)
                    result = serving.load(server, cell, requests[operation, images, protocol], args)
                    samples.setdefault((operation, images, protocol), []).append(result)
                    emit(f"[{repeat + 1}/{args.repeats}] {operation:11} x{images:<3} {protocol:9} c={args.concurrency} "
                         f"{result.rps:9.0f} req/s p99 {result.p99_ms:7.1f} ms errors {result.errors}")  # fmt: skip
    return samples


def tables(samples: dict[tuple[str, int, str], list[LoadResult]], args: argparse.Namespace) -> list[Table]:
    table = Table(
        f"V2 and REST on one server, CPU, {args.concurrency} connections "
        f"(median of {args.repeats}, {args.seconds} s each, {args.client})",
        ["operation", "images/request", "protocol", "req/s", "images/s", "p50 ms", "p99 ms", "errors",
         "server CPU us/req", "req/s x REST raw", "req/s x REST JSON", "CPU/req x REST raw"],
        notes=["x: the median of the per-round ratios (each round measures the four protocols back to back)."],
    )  # fmt: skip
    targets = Table(
        "Target: V2 binary within 10% of REST raw",
        ["cell", "req/s, V2 binary / REST raw", "server CPU per request, V2 binary / REST raw", "met (req/s >= 0.9x)"],
    )
    for operation, images, protocol in samples:
        rs = samples[operation, images, protocol]
        rps, cpu = [r.rps for r in rs], [_cpu(r) for r in rs]
        raw, json_ = (serving._paired(rps, [r.rps for r in samples[operation, images, p]]) for p in PROTOCOLS[::2])
        raw_cpu = serving._paired(cpu, [_cpu(r) for r in samples[operation, images, PROTOCOLS[0]]])
        table.add(f"/{operation}", images, protocol, fmt(median(rps)), fmt(median(rps) * images),
                  fmt(median(r.p50_ms for r in rs), 1), fmt(median(r.p99_ms for r in rs), 1),
                  sum(r.errors for r in rs), fmt(median(cpu)), f"{raw:.2f}", f"{json_:.2f}",
                  f"{raw_cpu:.2f}")  # fmt: skip
        if protocol == "V2 binary":
            targets.add(f"/{operation}, {images} image(s)", f"{raw:.2f}x", f"{raw_cpu:.2f}x",
                        "met" if raw >= 0.9 else "**missed**")  # fmt: skip
    return [table, targets]


def _cpu(result: LoadResult) -> float:
    """The server's CPU time per answered request, in us."""
    return result.server_cpu_s / result.ok * 1e6 if result.ok else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__)
    parser.add_argument("--store", type=Path, default=REPO / "checkpoints")
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--client", choices=("wrk", "httpx"), default=default_client(), help="default: wrk if there")
    parser.add_argument("--seconds", type=int, help="seconds per cell and protocol (default 3)")
    parser.add_argument("--max-requests", type=int, default=200_000, help="requests per cell and protocol, at most")
    parser.add_argument("--operations", nargs="+", choices=("reconstruct", "encode"), default=["reconstruct", "encode"])
    parser.add_argument("--images", type=int, nargs="+", default=[1, 256], help="images per request")
    parser.add_argument("--concurrency", type=int, default=16, help="connections")
    parser.add_argument("--log-level", default="info", help="the service's AE_LOG_LEVEL (info: access log on)")
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (1 if args.smoke else 3)
    args.seconds = args.seconds or (1 if args.smoke else 3)
    if args.smoke:
        args.operations, args.images, args.concurrency = ["reconstruct"], [1, 8], 2
        args.max_requests = min(args.max_requests, 2_000)
    info = machine()
    pixels = serving.mnist_pixels(args.data_dir, max(args.images))
    report("v2", tables(measure(args, pixels), args), info, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
