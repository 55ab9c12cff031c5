"""The forward pass: what one pass computes (`Pass`), and running it over a batch's rows."""

from __future__ import annotations

from enum import StrEnum

import numpy as np
import torch

from models import Autoencoder
from service.core.errors import UndecodableLatents

Outputs = dict[str, np.ndarray]  # named results ("codes", "images", "mse"), each with one row per input row
# Latent values beyond this are refused before any pass: the shipped models' codes of MNIST lie within
# +-30, and far enough out (3.4e38 does it) the decoder overflows into NaN, depending on the batch's
# size. Within it the decoders here stay finite by some thirty orders of magnitude.
LATENT_LIMIT = 1e6
# Decoding passes also give, per row, whether its image is finite: a net under LATENT_LIMIT, which
# fails only the request that sent the row, never the others sharing its pass.
DECODABLE = "decodable"


class Pass(StrEnum):
    """What a forward pass computes: what the response needs, and only that.

    The `_PIXELS` passes give the images as uint8 0-255, what raw replies send: quantised once per
    pass in the worker thread, not once per request on the event loop (and on CUDA before the copy
    to the host, a quarter of the bytes).
    """

    ENCODE = "encode"  # images -> "codes"
    DECODE = "decode"  # codes -> "images", floats in [0, 1]
    DECODE_PIXELS = "decode_pixels"  # codes -> "images", uint8
    RECONSTRUCT = "reconstruct"  # images -> "images", floats in [0, 1]
    RECONSTRUCT_PIXELS = "reconstruct_pixels"  # images -> "images", uint8
    RECONSTRUCT_MSE = "reconstruct_mse"  # images -> "images", floats, and each one's "mse"
    RECONSTRUCT_ALL = "reconstruct_all"  # images -> "codes" too: all of the above in one pass (the V2 default)

    @property
    def takes_codes(self) -> bool:
        return self in (Pass.DECODE, Pass.DECODE_PIXELS)

    @property
    def gives_pixels(self) -> bool:
        return self in (Pass.DECODE_PIXELS, Pass.RECONSTRUCT_PIXELS)


def as_unit_floats(images: np.ndarray) -> np.ndarray:
    """Pixels as float32 in [0, 1], from float32 already so or from uint8 0-255 (raw bodies)."""
    return images if images.dtype == np.float32 else np.true_divide(images, 255, dtype=np.float32)


def _pixels(images: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] -> uint8 0-255, rounded half to even; in place (the floats are not needed after)."""
    return images.mul_(255).round_().clamp_(0, 255).to(torch.uint8)


def run_pass(model: Autoencoder, device: torch.device, what: Pass, parts: list[np.ndarray]) -> Outputs:
    """One forward pass on the device over the parts' rows, in order; runs in a forward worker thread."""
    what = Pass(what)  # a Pass, or the string of one; anything else is a ValueError that names it
    inputs = [as_unit_floats(part) for part in parts]
    x = torch.from_numpy(inputs[0] if len(inputs) == 1 else np.concatenate(inputs)).to(device)
    with torch.inference_mode():
        if what.takes_codes:
            images = model.decode(x)
            decodable = torch.isfinite(images).all(dim=1)  # before quantising turns NaN into 0
        else:
            codes = model.encode(x)
            if what is Pass.ENCODE:
                return {"codes": codes.cpu().numpy()}
            images = model.decode(codes)
        out = {"images": _pixels(images) if what.gives_pixels else images}
        if what.takes_codes:
            out[DECODABLE] = decodable
        if what in (Pass.RECONSTRUCT_MSE, Pass.RECONSTRUCT_ALL):
            out["mse"] = (images - x).square().mean(dim=1)
        if what is Pass.RECONSTRUCT_ALL:
            out["codes"] = codes
        return {key: value.cpu().numpy() for key, value in out.items()}


def check_latents(latents: np.ndarray, model_name: str) -> np.ndarray:
    """(N, p) finite latents, or UndecodableLatents naming the first row with a value beyond LATENT_LIMIT."""
    bad = np.flatnonzero((np.abs(latents) > LATENT_LIMIT).any(axis=1))
    if len(bad):
        raise UndecodableLatents(model_name, int(bad[0]), f"a value beyond +-{LATENT_LIMIT:g}")
    return latents


def check_decodable(outputs: Outputs, model_name: str) -> Outputs:
    """A decoding pass's outputs for one request, or UndecodableLatents naming its first row that overflowed."""
    bad = np.flatnonzero(~outputs[DECODABLE])
    if len(bad):
        raise UndecodableLatents(model_name, int(bad[0]), "its image is not finite")
    return outputs


def warm(model: Autoencoder, device: torch.device) -> None:
    """Every pass once on a tiny batch: first-call allocations happen here, not in a client's request."""
    images = np.zeros((2, model.config.input_size), np.float32)
    codes = np.zeros((2, model.config.latent_size), np.float32)
    for what in Pass:
        run_pass(model, device, what, [codes if what.takes_codes else images])
