"""Picking the torch device, shared by training and serving."""

from __future__ import annotations

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(choice: str) -> torch.device:
    """'auto' takes CUDA when present and the CPU otherwise; 'cuda' without a GPU is an error."""
    if choice not in DEVICE_CHOICES:
        raise ValueError(f"unknown device {choice!r}; valid: {', '.join(DEVICE_CHOICES)}")
    if choice == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for, but CUDA is not available here; use 'auto' or 'cpu'")
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)
