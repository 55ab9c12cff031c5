"""What the service says about itself: its models (GET /models), its limits, its health and readiness."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aeclient.errors import UnknownModel, UnknownVersion
from aeclient.wire import JSON, Call, Limits, Reply, Version, json_body, load_json

MODELS = Call("GET", "/models", headers={"accept": JSON})
HEALTH = Call("GET", "/healthz")
READY = Call("GET", "/readyz")
# What a service too old to state its limits enforces by default (its AE_MAX_IMAGES_PER_REQUEST, AE_MAX_BODY_BYTES)
DEFAULT_LIMITS = Limits(max_images_per_request=4096, max_body_bytes=32 * 1024 * 1024)


@dataclass(frozen=True)
class ModelInfo:
    name: str
    versions: list[int]  # served, oldest first
    stable: int  # what unpinned requests get
    latest: int
    latent_size: int
    parameters: int | None
    metrics: dict[str, float]  # the stable version's final train and test MSE


@dataclass(frozen=True)
class ModelRef:
    """One version of one model, resolved to numbers: what a job pinned to it is answered by."""

    name: str
    version: int
    latent_size: int


@dataclass(frozen=True)
class Catalogue:
    default_model: str
    models: dict[str, ModelInfo]
    limits: Limits

    def resolve(self, model: str | None = None, version: Version | None = None) -> ModelRef:
        """`model` (default: the service's) at `version` (a number, "stable" or "latest"; default: stable)."""
        name = model or self.default_model
        info = self.models.get(name)
        if info is None:
            raise UnknownModel(f"unknown model {name!r}", 404, "not_found", {"available": sorted(self.models)})
        number = _version_number(version, info)
        if number not in info.versions:
            raise UnknownVersion(f"model {name!r} has no version {version}", 404, "not_found",
                                 {"available_versions": info.versions})  # fmt: skip
        assert number is not None
        return ModelRef(name, number, info.latent_size)


def _version_number(version: Version | None, info: ModelInfo) -> int | None:
    if version is None or version == "stable":
        return info.stable
    if version == "latest":
        return info.latest
    if isinstance(version, int):
        return version
    return int(version) if version.isdigit() else None


def parse_catalogue(reply: Reply) -> Catalogue:
    body = json_body(reply)
    models = {m["name"]: ModelInfo(**{k: m[k] for k in ModelInfo.__dataclass_fields__}) for m in body["models"]}
    limits = Limits(**body["limits"]) if "limits" in body else DEFAULT_LIMITS
    return Catalogue(body["default_model"], models, limits)


@dataclass(frozen=True)
class Readiness:
    ready: bool
    versions: int  # model versions served
    skipped: dict[str, str] = field(default_factory=dict)  # "name/version" of those not served, and why
    message: str = ""


def parse_readiness(reply: Reply) -> Readiness:
    """/readyz: 200 ready, 503 not (yet, or any more); any other status is an error."""
    if reply.status not in (200, 503):
        json_body(reply)  # raises the typed error
    try:
        body: dict[str, Any] = load_json(reply.content)
    except ValueError:
        body = {}
    if reply.status == 200:
        return Readiness(True, int(body.get("versions", 0)), dict(body.get("skipped", {})))
    error = body.get("error", {})
    return Readiness(False, 0, dict(error.get("skipped", {})), str(error.get("message", "")))
