"""Response and request schemas, named by role.

The routes build their replies as dicts and encode them with orjson, and parse bodies with orjson
and numpy (see codecs.py) rather than validating floats one by one; so the response schemas do not
run per request but are a checked contract: tests/service/test_schemas.py validates real replies
of every endpoint against the schema it declares, extra fields forbidden.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from models.images import PIXELS, SIDE
from models.store import NAME_PATTERN, InvalidNameError, check_name

ZERO_IMAGE = [0.0] * PIXELS
# The store's naming rule, as the document states it; a name outside it is refused (422) before any lookup.
MODEL_NAME: dict[str, Any] = {"type": "string", "pattern": NAME_PATTERN.pattern}
ModelName = Annotated[str, WithJsonSchema(MODEL_NAME)]
# Each inference endpoint's output formats (JSON the default); another is refused with 406 (codecs.output_format).
IMAGE_FORMATS = ("json", "png", "raw")
ENCODE_FORMATS = ("json", "raw")
MAP_FORMATS = ("json", "png")
FORMAT = "Output format, instead of the Accept header; default: json"


class ModelQuery(BaseModel):
    """Query parameters of the inference endpoints; `formats`: the endpoint's output formats."""

    formats: ClassVar[tuple[str, ...]] = IMAGE_FORMATS
    model: Annotated[str | None, WithJsonSchema(MODEL_NAME)] = Field(
        default=None, description="Model name; left out: the configured default model"
    )
    version: Annotated[int, Field(ge=1)] | Literal["stable", "latest"] | None = Field(
        default=None, description="A version number, `stable` or `latest`; default: `stable` (see GET /models)"
    )
    format: Annotated[str | None, WithJsonSchema({"type": "string", "enum": list(IMAGE_FORMATS)})] = Field(
        default=None, description=FORMAT
    )

    @field_validator("model")
    @classmethod
    def _a_possible_name(cls, name: str | None) -> str | None:
        """A blank `model=` is a mistake, not the default; a name the store could never hold says why."""
        if name == "":
            raise PydanticCustomError("blank_model", "blank: name a model, or leave 'model' out for the default one")
        try:
            return name if name is None else check_name(name)
        except InvalidNameError as e:
            raise PydanticCustomError("invalid_model_name", str(e)) from None


class EncodeQuery(ModelQuery):
    formats: ClassVar[tuple[str, ...]] = ENCODE_FORMATS
    format: Annotated[str | None, WithJsonSchema({"type": "string", "enum": list(ENCODE_FORMATS)})] = Field(
        default=None, description=FORMAT
    )


class MapQuery(ModelQuery):
    formats: ClassVar[tuple[str, ...]] = MAP_FORMATS
    format: Annotated[str | None, WithJsonSchema({"type": "string", "enum": list(MAP_FORMATS)})] = Field(
        default=None, description=FORMAT
    )
    limit: int | None = Field(default=None, ge=1, le=10_000, description="Test points on the map (default: setting)")


# What the JSON bodies may hold. Only documentation: codecs.py parses bodies itself (orjson into numpy).
Pixel = Annotated[float, Field(ge=0, le=1)]
FlatImage = Annotated[list[Pixel], Field(min_length=PIXELS, max_length=PIXELS)]
SquareImage = Annotated[
    list[Annotated[list[Pixel], Field(min_length=SIDE, max_length=SIDE)]], Field(min_length=SIDE, max_length=SIDE)
]


class ImagesRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"anyOf": [{"required": ["images"]}, {"required": ["images_png"]}]})

    images: Annotated[list[FlatImage | SquareImage], Field(min_length=1)] | SkipJsonSchema[None] = Field(
        default=None, description="Images, each 784 numbers or 28 rows of 28, in [0, 1] (white digit on black)"
    )
    images_png: Annotated[list[str], Field(min_length=1)] | SkipJsonSchema[None] = Field(
        default=None,
        description="Base64-encoded PNG (or JPEG) files, or data URLs; normalised like MNIST (see README). "
        "When given, 'images' is ignored",
    )


class LatentsRequest(BaseModel):
    latents: list[Annotated[list[float], Field(min_length=1)]] = Field(
        min_length=1, description="Latent vectors, each of the model's latent size p"
    )


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


class RequestLimits(Schema):
    """What one request may carry (settings AE_MAX_IMAGES_PER_REQUEST, AE_MAX_BODY_BYTES): clients split larger jobs."""

    max_images_per_request: int = Field(description="Images (or latent vectors) in one request; more is a 413")
    max_body_bytes: int = Field(description="Bytes in one request body; more is a 413")


class ModelList(Schema):
    default_model: str = Field(description="Served when a request names no model")
    models: list[ModelSummary]
    limits: RequestLimits


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


def binary(description: str) -> dict[str, Any]:
    """A media type whose body is bytes, as a schema (a media type has no description of its own)."""
    return {"schema": {"type": "string", "format": "binary", "description": description}}


# docs/examples/seven.png (the first 7 of the MNIST test set, 28 x 28 greyscale), base64: a working example
SEVEN_PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAABwAAAAcCAAAAABXZoBIAAAAxUlEQVR4nGNgGDaAEUKFpD77sfTFHeyS9xQYGBg+X4UKPuk6w8DAwMDAAuGm6l/T"
    "MnSweCzLwPDntSTDozPIOhkYGBgYBA3PmDIw/Lh1XShnGi5nBP+9KIRLTuzl/2AokwlDMlv0/U1cGq1//rPDJcfQ+m83Ky45zrM/rHBqrPu3Daec"
    "9+8PlrjkhO/+W4ZLjvn0v9vKuCTV/v3zxSUn/+BfMSMuydZ//0xwydl+QpdEClsbHoa7X1AkWZA5F53f4TIWEwAAaRE8kJuHrgAAAAAASUVORK5CYII="
)

IMAGES_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": ImagesRequest.model_json_schema(),
                "examples": {
                    "one blank image": {"value": {"images": [ZERO_IMAGE]}},
                    "base64 PNG": {"summary": "A handwritten 7 as a base64 PNG", "value": {"images_png": [SEVEN_PNG]}},
                },
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "array", "items": {"type": "string", "format": "binary"}}},
                    "description": "PNG (or JPEG) files, any number of parts; each file part is one image",
                },
            },
            "application/octet-stream": binary("N x 784 uint8 pixels (0-255), row-major, no header"),
            "image/png": binary("One PNG file as the whole body"),
            "image/jpeg": binary("One JPEG file as the whole body"),
        },
    }
}

# The JSON examples of /decode depend on the default model's latent size: added with the settings (routes/docs.py).
LATENTS_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": LatentsRequest.model_json_schema()},
            "application/octet-stream": binary("N x p little-endian float32 values, no header"),
        },
    }
}


def latents_examples(latent_size: int) -> dict[str, Any]:
    """Two latent vectors of `latent_size` numbers: the origin, and a point one unit off it on every axis."""
    point = [1.0 if axis % 2 == 0 else -1.0 for axis in range(latent_size)]
    vectors = {"latents": [[0.0] * latent_size, point]}
    return {"two latent vectors": {"summary": f"Two latent vectors for the default model (p = {latent_size})",
                                   "value": vectors}}  # fmt: skip


NOT_READY: dict[str, Any] = {"model": ErrorResponse, "description": "Not ready: loading, shutting down, or no model"}
ERROR_STATUSES = {
    400: "Malformed body",
    401: "Missing or wrong API key",
    404: "Unknown model or version",
    406: "Output format not available",
    413: "Too many images or too large a body",
    415: "Unsupported content type or content encoding",
    422: "Invalid input (shape, values, parameters)",
    503: "Overloaded (retry after Retry-After seconds), not ready, or shutting down",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The documented error replies of an endpoint, each an ErrorResponse."""
    return {status: {"model": ErrorResponse, "description": ERROR_STATUSES[status]} for status in statuses}
