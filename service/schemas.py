"""Response and request schemas, named by role.

The routes build their replies as dicts and encode them with orjson, and parse bodies with orjson
and numpy (see codecs.py) rather than validating floats one by one; so the response schemas do not
run per request but are a checked contract: tests/service/test_schemas.py validates real replies
of every endpoint against the schema it declares, extra fields forbidden.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ZERO_IMAGE = [0.0] * 784


class ModelQuery(BaseModel):
    """Query parameters of the inference endpoints."""

    model: str | None = Field(default=None, description="Model name; default: the configured default model")
    version: Annotated[int, Field(ge=1)] | Literal["stable", "latest"] | None = Field(
        default=None, description="A version number, `stable` or `latest`; default: `stable` (see GET /models)"
    )
    format: str | None = Field(
        default=None, description="Output format, instead of the Accept header: json, png or raw (as listed)"
    )


class MapQuery(ModelQuery):
    limit: int | None = Field(default=None, ge=1, le=10_000, description="Test points on the map (default: setting)")


class ImagesRequest(BaseModel):
    images: list[list[float]] | None = Field(
        default=None, description="Images, each 784 numbers or 28 rows of 28, in [0, 1] (white digit on black)"
    )
    images_png: list[str] | None = Field(
        default=None, description="Base64-encoded PNG (or JPEG) files; normalised like MNIST (see README)"
    )


class LatentsRequest(BaseModel):
    latents: list[list[float]] = Field(description="Latent vectors, each of the model's latent size p")


class Schema(BaseModel):
    """A reply's schema: exactly these fields (a reply with more would fail the contract test)."""

    model_config = ConfigDict(extra="forbid")


class EncodeResponse(Schema):
    model: str
    version: int
    latents: list[list[float]] = Field(description="One latent vector of size p per image")


class DecodeResponse(Schema):
    model: str
    version: int
    images: list[list[float]] = Field(description="One image of 784 pixels in [0, 1] per latent vector")


class ReconstructResponse(Schema):
    model: str
    version: int
    reconstructions: list[list[float]] = Field(description="784 pixels in [0, 1] per image")
    mse: list[float] = Field(description="Mean squared error per pixel, one per image")


class MapPoint(Schema):
    x: float
    y: float
    label: int = Field(ge=0, le=9, description="The test image's digit")


class Position(Schema):
    x: float
    y: float


class LatentMapResponse(Schema):
    model: str
    version: int
    projection: str = Field(description="'identity' for p = 2, 'pca' for p > 2")
    points: list[MapPoint]
    positions: list[Position] | None = Field(default=None, description="Where the posted images land (POST only)")


class ModelSummary(Schema):
    name: str
    versions: list[int] = Field(description="The served versions, oldest first")
    stable: int = Field(description="The version unpinned requests get (`stable` alias; without one, the latest)")
    latest: int = Field(description="The highest served version")
    latent_size: int
    parameters: int | None
    metrics: dict[str, float]


class ModelList(Schema):
    default_model: str = Field(description="Served when a request names no model")
    models: list[ModelSummary]


class Architecture(Schema):
    hidden_sizes: list[int] = Field(description="Encoder hidden layer widths; the decoder mirrors them")
    latent_size: int
    input_size: int
    activation: str
    batch_norm: bool


class VersionSummary(Schema):
    name: str
    version: int
    latent_size: int
    parameters: int | None
    architecture: Architecture
    dataset: str | None
    recipe: str | None = Field(description="The training recipe's name")
    epochs: int | None
    metrics: dict[str, float] = Field(description="Final train and test MSE")
    train_seconds: float | None
    created: str | None = Field(description="When the version was published (ISO 8601)")


class ModelDetail(Schema):
    name: str
    stable: int = Field(description="The version unpinned requests get")
    latest: int = Field(description="The highest served version")
    versions: list[VersionSummary] = Field(description="Every served version, oldest first")


class HealthResponse(Schema):
    status: str = Field(examples=["ok"])


class ReadyResponse(Schema):
    status: str = Field(examples=["ready"])
    versions: int = Field(description="Model versions served")
    skipped: dict[str, str] = Field(description="'name/version' of each version not served, and why")


class Problem(Schema):
    where: str = Field(examples=["query.version"])
    message: str


class ErrorBody(Schema):
    code: str = Field(examples=["invalid_input"])
    message: str = Field(examples=["images[2] has shape [780]; expected 784 or 28x28"])
    index: int | None = Field(default=None, description="Which image or latent vector of the request is wrong")
    limit: int | None = Field(default=None, description="The limit exceeded (413)")
    problems: list[Problem] | None = Field(default=None, description="Each invalid parameter (422)")
    available: list[str] | None = Field(default=None, description="What exists, for an unknown name (404)")
    available_versions: list[int] | None = Field(default=None, description="The versions served (404)")
    skipped: dict[str, str] | None = Field(default=None, description="Versions not served, and why (503)")


class ErrorResponse(Schema):
    error: ErrorBody


def _binary(description: str) -> dict[str, Any]:
    return {"schema": {"type": "string", "format": "binary"}, "description": description}


IMAGES_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": ImagesRequest.model_json_schema(),
                "examples": {
                    "one blank image": {"value": {"images": [ZERO_IMAGE]}},
                    "base64 PNG": {"value": {"images_png": ["iVBORw0KGgo...(base64 of a PNG file)"]}},
                },
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "array", "items": {"type": "string", "format": "binary"}}},
                },
                "example": {"file": "digit.png"},
            },
            "application/octet-stream": _binary("N x 784 uint8 pixels (0-255), row-major, no header"),
            "image/png": _binary("One PNG file as the whole body"),
        },
    }
}

LATENTS_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": LatentsRequest.model_json_schema(),
                "examples": {"two latent vectors (p = 2)": {"value": {"latents": [[0.0, 0.0], [1.5, -2.0]]}}},
            },
            "application/octet-stream": _binary("N x p little-endian float32 values, no header"),
        },
    }
}

NOT_READY: dict[str, Any] = {"model": ErrorResponse, "description": "Not ready: loading, shutting down, or no model"}
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in {
        400: "Malformed body",
        401: "Missing or wrong API key",
        404: "Unknown model or version",
        406: "Output format not available",
        413: "Too many images or too large a body",
        415: "Unsupported content type",
        422: "Invalid input (shape, values, parameters)",
        503: "Overloaded or shutting down; retry after Retry-After seconds",
    }.items()
}
