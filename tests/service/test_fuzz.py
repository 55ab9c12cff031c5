"""A bounded, seeded fuzzing pass generated from the OpenAPI document, against a live server.

Schemathesis turns the document the server publishes into requests: valid ones (positive) and
ones that break the documented parameters or bodies (negative), a fixed number per operation,
from a fixed seed, so a run is reproducible and short. Every reply must be a documented status
with a documented content type, a body and headers that match the schema declared for it, never
a 5xx; the server runs with an API key, sent with every request, and an operation that declares
the key must refuse a request without it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from liveserver import LiveServer, live_server
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.slow  # a live server

KEY = "fuzz-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
SEED = 20_14_05  # issue #14, part 5
EXAMPLES = 40  # per operation and mode: about 20 s in all on 2 cores
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    ignored_auth,
]
# images of 784 numbers are large examples, and an HTTP round trip is slow by Hypothesis's measure
SLOW_IS_FINE = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
# Every operation of the document; those with no parameter and no body have nothing to break.
OPERATIONS = {
    "POST /encode": True,
    "POST /decode": True,
    "POST /reconstruct": True,
    "GET /latent-map": True,
    "POST /latent-map": True,
    "GET /models": False,
    "GET /models/{name}": True,
    "GET /healthz": False,
    "GET /readyz": False,
    "GET /metrics": False,
}
RUNS = [(label, GenerationMode.POSITIVE) for label in OPERATIONS] + [
    (label, GenerationMode.NEGATIVE) for label, breakable in OPERATIONS.items() if breakable
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, store_root: Path) -> Iterator[LiveServer]:
    workdir = tmp_path_factory.mktemp("fuzz")
    with live_server(workdir, store_root, default_model="mlp2-p2", api_key=KEY, access_log="false") as live:
        yield live


@pytest.fixture(scope="module")
def schema(server: LiveServer) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{server.url}/openapi.json")


def test_every_operation_is_fuzzed(schema: schemathesis.BaseSchema) -> None:
    paths = schema.raw_schema["paths"]
    assert {f"{method.upper()} {path}" for path in paths for method in paths[path]} == set(OPERATIONS)


@pytest.mark.parametrize(("label", "mode"), RUNS, ids=[f"{label} {mode.value}" for label, mode in RUNS])
def test_fuzzed_requests_get_documented_replies(
    schema: schemathesis.BaseSchema, server: LiveServer, label: str, mode: GenerationMode
) -> None:
    method, path = label.split(" ")
    operation = schema[path][method]
    statuses: list[int] = []

    @seed(SEED)
    @settings(max_examples=EXAMPLES, database=None, deadline=None, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=SLOW_IS_FINE)  # fmt: skip
    @given(case=operation.as_strategy(mode))
    def fuzz(case: Case) -> None:
        response = case.call_and_validate(base_url=server.url, headers=AUTH, checks=CHECKS)
        statuses.append(response.status_code)

    fuzz()
    assert statuses, "no request was made"
    assert all(status < 500 for status in statuses)
