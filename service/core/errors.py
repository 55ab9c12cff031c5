"""What the core refuses, in words and as data, for any protocol to report in its own way."""

from __future__ import annotations

from typing import Any


class CoreError(Exception):
    """A request the core cannot serve: `str()` says why, `details` holds what a client can act on."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.details = details


class InvalidModelName(CoreError):
    """A model name that could never exist in the store (the store's naming rule, quoted)."""


class UnknownModel(CoreError):
    def __init__(self, name: str, available: list[str]) -> None:
        super().__init__(f"unknown model {name!r}", available=available)


class UnknownVersion(CoreError):
    def __init__(self, name: str, version: int | str, available_versions: list[int]) -> None:
        super().__init__(f"model {name!r} has no version {version}", available_versions=available_versions)


class Overloaded(CoreError):
    """The model's queue is full or shutting down: worth retrying shortly, elsewhere or later."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"model {name} is busy ({reason}); retry shortly")


class UndecodableLatents(CoreError):
    """Latents so far from the model's latent space that its decoder overflows: no image to give."""

    def __init__(self, name: str, index: int, why: str) -> None:
        super().__init__(
            f"latents[{index}] is too far outside {name}'s latent space to decode ({why}); "
            "the latent map (/latent-map) shows the region the model knows",
            index=index,
        )
