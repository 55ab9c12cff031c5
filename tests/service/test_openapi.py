"""What the API says about itself is true: the OpenAPI document against what the service does.

Methods (a wrong one's 405 lists all of the path's), media types (each format's reply is one the
document names, and each one it names is given), enums and patterns of the parameters, the
security scheme (declared with a key, on exactly the operations that refuse a request without
it), and examples (each one sent as it stands works, on the test store and on the shipped
checkpoints with the production default model). With a key, what stays open is a deliberate list.
"""

from __future__ import annotations

import base64
import gzip
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from models import CONFIGS
from models.store import NAME_PATTERN
from service.app import create_app
from service.codecs import OUTPUT_TYPES
from service.deps import needs_key
from service.schemas import SEVEN_PNG, EncodeQuery, MapQuery, ModelQuery
from service.settings import Settings

REPO = Path(__file__).resolve().parents[2]
KEY = "s3cret"
AUTH = {"Authorization": f"Bearer {KEY}"}
# The routes open without the key when one is set, each for a reason: health for orchestrators, the
# docs and the demo are static pages whose API calls need the key (see README, "The API").
OPEN = {"/healthz", "/readyz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/demo", "/demo/{name}"}
OPEN_PREFIXES = ("/docs/assets/",)
QUERIES = {"/encode": EncodeQuery, "/decode": ModelQuery, "/reconstruct": ModelQuery, "/latent-map": MapQuery}


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            yield path, method.upper(), operation


def sample(path: str, method: str, operation: dict[str, Any], **query: str) -> dict[str, Any]:
    """A valid request for the operation: its first JSON example as the body, if it takes one."""
    request: dict[str, Any] = {"method": method, "url": path.replace("{name}", "mlp2-p2"), "params": query}
    if "requestBody" in operation:
        request["json"] = next(iter(operation["requestBody"]["content"]["application/json"]["examples"].values()))[
            "value"
        ]
    return request


@pytest.fixture
def secured(configure: Callable[..., Settings]) -> Iterator[TestClient]:
    with TestClient(create_app(configure(api_key=KEY))) as client:
        yield client


def test_a_wrong_method_is_answered_with_every_method_of_the_path(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path, methods in spec["paths"].items():
        documented = {method.upper() for method in methods}
        for wrong in {"GET", "POST", "PUT", "DELETE", "PATCH"} - documented:
            response = client.request(wrong, path.replace("{name}", "mlp2-p2"))
            assert (response.status_code, response.json()["error"]["code"]) == (405, "method_not_allowed"), path
            assert set(response.headers["allow"].split(", ")) == documented, (wrong, path)
    assert client.put("/latent-map").headers["allow"] == "GET, POST"


def test_each_reply_is_in_a_media_type_the_document_names_and_each_named_one_is_given(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path, method, operation in operations(spec):
        documented = set(operation["responses"]["200"]["content"])
        formats = next((p["schema"]["enum"] for p in operation.get("parameters", []) if p["name"] == "format"), [None])
        given = set()
        for fmt in formats:
            response = client.request(**sample(path, method, operation, **({"format": fmt} if fmt else {})))
            assert response.status_code == 200, (method, path, fmt, response.text)
            given.add(response.headers["content-type"].split(";")[0])
            if fmt == "raw":
                assert "X-Shape" in operation["responses"]["200"]["headers"] and response.headers["x-shape"]
        assert given == documented, (method, path)
    assert set(spec["paths"]["/encode"]["post"]["responses"]["200"]["content"]) == {OUTPUT_TYPES["json"],
                                                                                     OUTPUT_TYPES["raw"]}  # fmt: skip


def test_metrics_are_documented_as_prometheus_text(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert set(spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]) == {"text/plain"}
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    assert any(family.name == "ae_requests" for family in text_string_to_metric_families(response.text))


def test_format_is_an_enum_of_what_each_endpoint_serves_and_another_is_a_406(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path, method, operation in operations(spec):
        parameters = {p["name"]: p["schema"] for p in operation.get("parameters", [])}
        if path not in QUERIES:
            assert "format" not in parameters
            continue
        assert parameters["format"] == {"type": "string", "enum": list(QUERIES[path].formats), "title": "Format"}
        outside = next(fmt for fmt in ("png", "raw", "gif") if fmt not in QUERIES[path].formats)
        refused = client.request(**sample(path, method, operation, format=outside))
        assert (refused.status_code, refused.json()["error"]["code"]) == (406, "not_acceptable"), path


def test_model_names_follow_the_stores_pattern_and_a_blank_one_is_a_422(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path, method, operation in operations(spec):
        for parameter in operation.get("parameters", []):
            if parameter["name"] in ("model", "name"):
                assert parameter["schema"]["pattern"] == NAME_PATTERN.pattern, (method, path)
                assert parameter["required"] == (parameter["in"] == "path")
    blank = client.post("/encode?model=", json={"images": [[0.0] * 784]})
    assert blank.status_code == 422, blank.text
    assert blank.json()["error"]["problems"] == [
        {"where": "query.model", "message": "blank: name a model, or leave 'model' out for the default one"}
    ]
    assert client.get("/latent-map?model=&limit=1").status_code == 422
    assert "invalid model name" in client.get("/models/Not_A_Name").json()["error"]["message"]


@pytest.mark.parametrize("store", ["test store", "shipped checkpoints"])
def test_every_documented_example_works_as_it_stands(configure: Callable[..., Settings], store: str) -> None:
    """What "Try it out" sends: each example, on the default model, no parameter filled in."""
    settings = configure() if store == "test store" else Settings(store=REPO / "checkpoints", device="cpu",
                                                                  _env_file=None)  # type: ignore[call-arg]  # fmt: skip
    with TestClient(create_app(settings)) as client:
        spec = client.get("/openapi.json").json()
        sent = 0
        for path, method, operation in operations(spec):
            for parameter in operation.get("parameters", []):
                assert not {"example", "examples"} & set(parameter), "a parameter's example is not sent here"
            for media_type, content in operation.get("requestBody", {}).get("content", {}).items():
                assert "example" not in content, (path, media_type)
                for name, example in content.get("examples", {}).items():
                    response = client.request(method, path, json=example["value"])
                    assert response.status_code == 200, (method, path, name, response.text)
                    sent += 1
    assert sent == 2 * 3 + 1  # two image bodies for each of three operations, and /decode's latents


def test_the_decode_example_is_for_the_default_models_latent_size(configure: Callable[..., Settings]) -> None:
    def examples(default_model: str) -> dict[str, Any]:
        spec = create_app(configure(default_model=default_model)).openapi()
        return spec["paths"]["/decode"]["post"]["requestBody"]["content"]["application/json"].get("examples", {})

    for name, config in CONFIGS.items():
        (example,) = examples(name).values()
        assert {len(vector) for vector in example["value"]["latents"]} == {config.latent_size}, name
    assert examples("not-a-configuration") == {}  # its latent size is unknown until loaded: no example at all


def test_the_base64_example_is_the_tutorials_seven() -> None:
    assert base64.b64decode(SEVEN_PNG) == (REPO / "docs" / "examples" / "seven.png").read_bytes()


def test_without_a_key_the_document_declares_no_security(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "securitySchemes" not in spec["components"]
    for path, method, operation in operations(spec):
        assert "security" not in operation and "401" not in operation["responses"], (method, path)


def test_with_a_key_the_security_scheme_is_on_exactly_the_operations_that_refuse_a_request_without_it(
    secured: TestClient,
) -> None:
    spec = secured.get("/openapi.json").json()
    (scheme,) = spec["components"]["securitySchemes"].values()
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    secure = []
    for path, method, operation in operations(spec):
        request = sample(path, method, operation)
        declared = "security" in operation
        assert ("401" in operation["responses"]) == declared, (method, path)
        refused = secured.request(**request)
        assert (refused.status_code == 401) == declared, (method, path, refused.status_code)
        assert secured.request(**request, headers=AUTH).status_code == 200, (method, path)
        if declared:
            secure.append(f"{method} {path}")
    assert len(secure) == len(list(operations(spec))) - 2  # all but /healthz and /readyz


def test_with_a_key_what_stays_open_is_the_deliberate_list(
    secured: TestClient, configure: Callable[..., Settings], store_root: Path
) -> None:
    app = create_app(configure(api_key=KEY))
    for route in iter_route_contexts(app.routes):
        path = route.path_format or ""
        if path.startswith("/v2"):  # the Open Inference Protocol checks the key in its handlers: test_v2_errors.py
            continue
        needs = isinstance(route.original_route, APIRoute) and needs_key(route)
        assert needs != (path in OPEN or path.startswith(OPEN_PREFIXES)), path
    for path in ("/healthz", "/readyz", "/openapi.json", "/docs", "/redoc", "/demo", "/demo/demo.js"):
        assert secured.get(path).status_code == 200, path
    ready = secured.get("/readyz").json()
    assert set(ready) == {"status", "versions", "skipped"} and set(ready["skipped"]) == {"mlp1-p2/1"}
    document = secured.get("/openapi.json").text
    assert str(store_root) not in ready["skipped"]["mlp1-p2/1"] and str(store_root) not in document
    assert not [name for name in ("mlp2-p2", "mlp2-p8", "mlp1-p2") if name in document]  # nothing of the store


def test_without_the_key_a_request_learns_nothing_from_its_query(secured: TestClient) -> None:
    for url in ("/encode?version=0", "/encode?model=", "/encode?format=gif", "/latent-map?limit=0"):
        response = secured.request("GET" if url.startswith("/latent-map") else "POST", url)
        assert (response.status_code, response.json()["error"]["code"]) == (401, "unauthorized"), url


def test_a_compressed_body_is_refused_not_misread(client: TestClient) -> None:
    """The service reads no content coding: gzipped pixels taken as raw bytes would be another image."""
    raw = {"Content-Type": "application/octet-stream", "Content-Encoding": "gzip"}
    refused = client.post("/encode", content=gzip.compress(bytes(784 * 4)), headers=raw)
    assert (refused.status_code, refused.json()["error"]["code"]) == (415, "unsupported_media_type")
    assert refused.headers["accept-encoding"] == "identity"
    identity = {"Content-Type": "application/json", "Content-Encoding": "identity"}
    assert client.post("/encode", json={"images": [[0.0] * 784]}, headers=identity).status_code == 200
    assert client.get("/latent-map?limit=1", headers={"Content-Encoding": "gzip"}).status_code == 200  # no body
