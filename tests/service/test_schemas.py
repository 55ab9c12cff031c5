"""The response schemas are a checked contract: the routes build their replies by hand, so every
endpoint's real JSON reply is validated here against the schema it declares (extra fields forbidden),
and every kind of error against ErrorResponse."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel

from service import schemas
from service.app import create_app
from service.schemas import ErrorResponse
from service.settings import Settings

IMAGES = {"images": [[0.5] * 784, [0.0] * 784]}
# (method, route, URL, request): one real request per JSON endpoint
ENDPOINTS: list[tuple[str, str, str, dict[str, Any]]] = [
    ("POST", "/encode", "/encode", {"json": IMAGES}),
    ("POST", "/decode", "/decode", {"json": {"latents": [[0.0, 0.0], [1.5, -2.0]]}}),
    ("POST", "/reconstruct", "/reconstruct", {"json": IMAGES}),
    ("GET", "/latent-map", "/latent-map?limit=5", {}),
    ("POST", "/latent-map", "/latent-map?limit=5", {"json": IMAGES}),
    ("GET", "/models", "/models", {}),
    ("GET", "/models/{name}", "/models/mlp2-p2", {}),
    ("GET", "/healthz", "/healthz", {}),
    ("GET", "/readyz", "/readyz", {}),
]
RAW = {"content-type": "application/octet-stream"}
JSON = {"content-type": "application/json"}
# (status, code, method, URL, request): every detail an error may carry appears at least once
ERRORS: list[tuple[int, str, str, str, dict[str, Any]]] = [
    (400, "malformed_body", "POST", "/decode", {"content": b"{not json", "headers": JSON}),
    (404, "not_found", "POST", "/encode?model=nope", {"json": IMAGES}),  # available
    (404, "not_found", "POST", "/encode?version=9", {"json": IMAGES}),  # available_versions
    (404, "not_found", "GET", "/demo/nope", {}),  # available
    (405, "method_not_allowed", "GET", "/encode", {}),
    (406, "not_acceptable", "POST", "/encode?format=gif", {"json": IMAGES}),
    (413, "payload_too_large", "POST", "/encode", {"content": bytes(784 * 3), "headers": RAW}),  # limit
    (415, "unsupported_media_type", "POST", "/encode", {"content": b"hi", "headers": {"content-type": "text/plain"}}),
    (422, "invalid_input", "POST", "/encode?version=zero", {"json": IMAGES}),  # problems
    (422, "invalid_input", "POST", "/encode", {"json": {"images": [[2.0] * 784]}}),  # index
    (422, "invalid_input", "POST", "/encode?model=Not_A_Name", {"json": IMAGES}),
]


def _declared(client: TestClient) -> dict[tuple[str, str], type[BaseModel]]:
    """(method, route) -> the schema of its JSON 200 reply, as the OpenAPI document declares it."""
    declared = {}
    for route, operations in client.get("/openapi.json").json()["paths"].items():
        for method, operation in operations.items():
            reply = operation["responses"].get("200", {}).get("content", {}).get("application/json", {})
            if "$ref" in reply.get("schema", {}):
                declared[method.upper(), route] = getattr(schemas, reply["schema"]["$ref"].rsplit("/", 1)[1])
    return declared


def test_every_json_endpoint_replies_what_its_schema_declares(client: TestClient) -> None:
    declared = _declared(client)
    assert {(method, route) for method, route, _, _ in ENDPOINTS} == set(declared), "an endpoint is not checked"
    for method, route, url, request in ENDPOINTS:
        response = client.request(method, url, **request)
        assert response.status_code == 200, (url, response.text)
        declared[method, route].model_validate_json(response.content)  # a missing, extra or mistyped field fails


@pytest.mark.parametrize(("status", "code", "method", "url", "request_"), ERRORS, ids=[e[3] for e in ERRORS])
def test_every_kind_of_error_is_an_error_response(
    configure: Callable[..., Settings], status: int, code: str, method: str, url: str, request_: dict[str, Any]
) -> None:
    with TestClient(create_app(configure(max_images_per_request=2))) as client:
        response = client.request(method, url, **request_)
    assert (response.status_code, response.json()["error"]["code"]) == (status, code), response.text
    ErrorResponse.model_validate_json(response.content)


def test_unauthorized_and_not_ready_are_error_responses(configure: Callable[..., Settings], tmp_path: Path) -> None:
    with TestClient(create_app(configure(api_key="k"))) as secured:
        ErrorResponse.model_validate_json(secured.get("/models").content)
    with TestClient(create_app(configure(store=tmp_path))) as empty:
        not_ready = empty.get("/readyz")  # skipped
        assert not_ready.status_code == 503
        ErrorResponse.model_validate_json(not_ready.content)
