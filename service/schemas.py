"""Response and request schemas, named by role. They document the API; the hot path
parses bodies with orjson and numpy (see codecs.py) rather than validating floats one by one."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

ZERO_IMAGE = [0.0] * 784


class ModelQuery(BaseModel):
    """Query parameters of the inference endpoints."""

    model: str | None = Field(default=None, description="Model name; default: the configured default model")
    version: int | None = Field(default=None, ge=1, description="Version; default: the latest")
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


class EncodeResponse(BaseModel):
    model: str
    version: int
    latents: list[list[float]] = Field(description="One latent vector of size p per image")


class DecodeResponse(BaseModel):
    model: str
    version: int
    images: list[list[float]] = Field(description="One image of 784 pixels in [0, 1] per latent vector")


class ReconstructResponse(BaseModel):
    model: str
    version: int
    reconstructions: list[list[float]] = Field(description="784 pixels in [0, 1] per image")
    mse: list[float] = Field(description="Mean squared error per pixel, one per image")


class MapPoint(BaseModel):
    x: float
    y: float
    label: int = Field(ge=0, le=9, description="The test image's digit")


class Position(BaseModel):
    x: float
    y: float


class LatentMapResponse(BaseModel):
    model: str
    version: int
    projection: str = Field(description="'identity' for p = 2, 'pca' for p > 2")
    points: list[MapPoint]
    positions: list[Position] | None = Field(default=None, description="Where the posted images land (POST only)")


class ModelSummary(BaseModel):
    name: str
    versions: list[int]
    latest: int
    latent_size: int
    parameters: int | None
    metrics: dict[str, float]


class ModelList(BaseModel):
    default_model: str = Field(description="Served when a request names no model")
    models: list[ModelSummary]


class ModelDetail(BaseModel):
    name: str
    versions: list[dict[str, Any]] = Field(description="Every served version: architecture, metrics, training")


class ErrorBody(BaseModel):
    code: str = Field(examples=["invalid_input"])
    message: str = Field(examples=["images[2] has shape [780]; expected 784 or 28x28"])


class ErrorResponse(BaseModel):
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
