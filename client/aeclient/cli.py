"""ae-client: compress a folder of digits into latent codes with the service, and back.

    ae-client encode digits/ -o codes.npz [--float16]     PNG/JPEG files (or an .npy array) -> codes
    ae-client decode codes.npz -o decoded/                codes -> PNG files, by the version that made them
    ae-client reconstruct digits/ -o mse.csv [--images out/]   the MSE of each digit through the model
    ae-client models                                      what the service serves

The service: --url (or $AE_URL; default http://127.0.0.1:8000), with --api-key (or $AE_API_KEY).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from tqdm import tqdm

from aeclient.base import DEFAULT_URL
from aeclient.catalog import ModelRef
from aeclient.errors import AEClientError
from aeclient.files import Codes, Source, read_source, write_pngs
from aeclient.sync import Client

PIXEL_BYTES = 784  # a digit as raw 8-bit pixels


def say(text: str) -> None:
    sys.stdout.write(text + "\n")


@contextmanager
def progress_bar(total: int, what: str, quiet: bool) -> Iterator[Callable[[int], None]]:
    """A tqdm bar on stderr (shown on a terminal, never with --quiet), advanced by images done."""
    with tqdm(total=total, desc=what, unit="img", disable=True if quiet else None, leave=False) as bar:
        yield bar.update


def pinned(client: Client, args: argparse.Namespace) -> ModelRef:
    """The model and version number the job will use, resolved once: every request of it is pinned to them."""
    return client.resolve(args.model, args.version)


def encode(client: Client, args: argparse.Namespace) -> None:
    source = read_source(args.source)
    ref = pinned(client, args)
    with progress_bar(len(source), "encoding", args.quiet) as advance:
        codes = client.encode(source.images, model=ref.name, version=ref.version, progress=advance)
    stored = codes.astype(np.float16) if args.float16 else codes
    Codes(stored, source.names, ref.name, ref.version).save(args.output)
    per_image = stored.shape[1] * stored.itemsize
    say(f"encoded {len(source):,} images with {ref.name} v{ref.version} into {args.output}: "
        f"{stored.shape[1]} {stored.dtype} numbers, {per_image} bytes per image")  # fmt: skip
    ratio = f"compression: {PIXEL_BYTES / per_image:.1f}x against raw 8-bit pixels ({PIXEL_BYTES} bytes)"
    if source.kind == "files":
        ratio += f", {source.input_bytes / len(source) / per_image:.1f}x against the files as they are "
        ratio += f"(mean {source.input_bytes / len(source):,.0f} bytes)"
    say(ratio + f"; {args.output.name}: {args.output.stat().st_size:,} bytes, names included")
    if not args.no_check:
        check(client, args, source, ref, codes, stored)


def check(client: Client, args: argparse.Namespace, source: Source, ref: ModelRef, codes: np.ndarray,
          stored: np.ndarray) -> None:  # fmt: skip
    """The mean MSE these codes give back (through /reconstruct, the same version); for float16 codes, how far
    their decoded pixels move from the float32 codes' (the exact error they add: BENCHMARKS.md, rate-distortion)."""
    with progress_bar(len(source), "measuring", args.quiet) as advance:
        _, mse = client.reconstruct(source.images, model=ref.name, version=ref.version, progress=advance)
    say(f"mean MSE of the reconstructions: {mse.mean():.5f} per pixel (images in [0, 1])")
    if stored.dtype != codes.dtype:
        exact = client.decode(codes, model=ref.name, version=ref.version).astype(np.int16)
        compact = client.decode(stored.astype(np.float32), model=ref.name, version=ref.version).astype(np.int16)
        shift = ((exact - compact) / 255.0) ** 2
        say(f"float16 codes move the decoded pixels by a mean squared {shift.mean():.2e} "
            f"(at most {np.abs(exact - compact).max()}/255) against float32 codes")  # fmt: skip


def decode(client: Client, args: argparse.Namespace) -> None:
    codes = Codes.load(args.codes)
    if args.model not in (None, codes.model) or args.version not in (None, codes.version, str(codes.version)):
        raise ValueError(f"{args.codes} holds codes of {codes.model} v{codes.version}; "
                         "only that version decodes them (leave out --model and --version)")  # fmt: skip
    with progress_bar(len(codes.names), "decoding", args.quiet) as advance:
        images = client.decode(codes.codes.astype(np.float32), model=codes.model, version=codes.version,
                               progress=advance)  # fmt: skip
    write_pngs(images, codes.names, args.output)
    say(f"decoded {len(images):,} images with {codes.model} v{codes.version} into {args.output}/")


def reconstruct(client: Client, args: argparse.Namespace) -> None:
    source = read_source(args.source)
    ref = pinned(client, args)
    with progress_bar(len(source), "reconstructing", args.quiet) as advance:
        images, mse = client.reconstruct(source.images, model=ref.name, version=ref.version, progress=advance)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with args.output.open("w", newline="") as report:
        writer = csv.writer(report)
        writer.writerow(["name", "mse"])
        writer.writerows([name, f"{value:.6f}"] for name, value in zip(source.names, mse.tolist(), strict=True))
    if args.images:
        write_pngs(images, source.names, args.images)
    say(f"reconstructed {len(source):,} images with {ref.name} v{ref.version}: MSE per image in {args.output}")
    say(f"compression: {PIXEL_BYTES / (4 * ref.latent_size):.1f}x against raw 8-bit pixels "
        f"({ref.latent_size} float32 numbers per image); mean MSE {mse.mean():.5f}")  # fmt: skip


def models(client: Client, _args: argparse.Namespace) -> None:
    catalogue = client.models()
    say(f"{'model':<12} {'p':>3} {'stable':>6} {'latest':>6}  versions  test MSE  (default: {catalogue.default_model})")
    for info in catalogue.models.values():
        test = info.metrics.get("test_mse")
        say(f"{info.name:<12} {info.latent_size:>3} {info.stable:>6} {info.latest:>6}  "
            f"{','.join(map(str, info.versions)):<8}  {'-' if test is None else f'{test:.4f}'}")  # fmt: skip


def version(text: str) -> int | str:
    return int(text) if text.isdigit() else text


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="ae-client", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    top.add_argument("--url", default=os.environ.get("AE_URL", DEFAULT_URL), help="the service (default: $AE_URL)")
    top.add_argument("--api-key", default=os.environ.get("AE_API_KEY"), help="its API key (default: $AE_API_KEY)")
    top.add_argument("--model", help="default: the service's default model")
    top.add_argument("--version", type=version, help="a number, stable or latest (default: stable)")
    top.add_argument("--json", action="store_true", help="JSON on the wire instead of raw bytes (slower)")
    top.add_argument("--concurrency", type=int, default=4, help="requests in flight at once (default: 4)")
    top.add_argument("--chunk-size", type=int, default=1024, help="images per request, at most the service's limit")
    top.add_argument("--quiet", action="store_true", help="no progress bar")
    commands = top.add_subparsers(dest="command", required=True)
    enc = commands.add_parser("encode", help="a folder of PNG/JPEG files (or an .npy array) -> codes (.npz)")
    enc.add_argument("source", type=Path)
    enc.add_argument("-o", "--output", type=Path, required=True, help="the codes file (.npz)")
    enc.add_argument("--float16", action="store_true", help="store half-precision codes: half the bytes")
    enc.add_argument("--no-check", action="store_true", help="skip measuring the MSE (a second pass)")
    enc.set_defaults(run=encode)
    dec = commands.add_parser("decode", help="codes (.npz) -> PNG files")
    dec.add_argument("codes", type=Path)
    dec.add_argument("-o", "--output", type=Path, required=True, help="the folder for the PNG files")
    dec.set_defaults(run=decode)
    rec = commands.add_parser("reconstruct", help="the MSE of each image through the model (CSV)")
    rec.add_argument("source", type=Path)
    rec.add_argument("-o", "--output", type=Path, required=True, help="the CSV report: name, mse")
    rec.add_argument("--images", type=Path, help="also write the reconstructions as PNG files here")
    rec.set_defaults(run=reconstruct)
    commands.add_parser("models", help="the served models").set_defaults(run=models)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    options = {"api_key": args.api_key, "concurrency": args.concurrency, "chunk_size": args.chunk_size,
               "transport": "json" if args.json else "raw"}  # fmt: skip
    try:
        with Client(args.url, **options) as client:
            args.run(client, args)
    except (AEClientError, ValueError, OSError) as e:
        sys.stderr.write(f"ae-client: {e}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("ae-client: interrupted\n")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
