"""A Python client for the MNIST autoencoder service: numpy in and out, raw bytes on the wire, large jobs split
under the service's limits and sent concurrently, retries on 503 and broken connections, typed errors.

    from aeclient import Client
    with Client("http://127.0.0.1:8000", model="mlp2-p16") as client:
        codes = client.encode(images)               # (N, 16) float32
        digits = client.decode(codes)               # (N, 28, 28) uint8

AsyncClient is the same for asyncio. `ae-client` (aeclient.cli) is its command line.
"""

from aeclient.aio import AsyncClient
from aeclient.catalog import Catalogue, ModelInfo, ModelRef, Readiness
from aeclient.errors import (
    AEClientError,
    ConnectionFailed,
    InvalidInput,
    MalformedRequest,
    NotAcceptable,
    Overloaded,
    ServerError,
    ServiceError,
    TooLarge,
    Unauthorized,
    UnknownModel,
    UnknownVersion,
    UnsupportedMediaType,
)
from aeclient.jobs import LatentMap
from aeclient.retry import Retry
from aeclient.sync import Client
from aeclient.wire import Limits

__all__ = [
    "AEClientError",
    "AsyncClient",
    "Catalogue",
    "Client",
    "ConnectionFailed",
    "InvalidInput",
    "LatentMap",
    "Limits",
    "MalformedRequest",
    "ModelInfo",
    "ModelRef",
    "NotAcceptable",
    "Overloaded",
    "Readiness",
    "Retry",
    "ServerError",
    "ServiceError",
    "TooLarge",
    "Unauthorized",
    "UnknownModel",
    "UnknownVersion",
    "UnsupportedMediaType",
]
