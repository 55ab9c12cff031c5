"""What the codecs say about a body they refuse: the precise problem, not a neighbouring one."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pngs import encode_png

from bench.hostile import multipart


def _error(response: Any, status: int, code: str, fragment: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and fragment in error["message"], error


def test_a_finite_value_beyond_float32_is_out_of_range_not_infinite(client: TestClient) -> None:
    _error(client.post("/decode", json={"latents": [[0.0, 0.0], [1e39, 0.0]]}), 422, "invalid_input",
           "latents[1] has a value outside float32's range")  # fmt: skip
    _error(client.post("/encode", json={"images": [[-1e39] * 784]}), 422, "invalid_input",
           "images[0] has a value outside float32's range")  # fmt: skip
    _error(client.post("/decode", json={"latents": [[3.4e38, -3.4e38]]}), 422, "invalid_input",
           "latents[0] is too far outside")  # within float32, beyond LATENT_LIMIT  # fmt: skip
    assert client.post("/decode", json={"latents": [[1e5, -1e5]]}).status_code == 200


def test_an_infinite_raw_latent_is_still_nan_or_infinity(client: TestClient) -> None:
    body = np.array([[0.0, np.inf]], dtype="<f4").tobytes()
    response = client.post("/decode", content=body, headers={"content-type": "application/octet-stream"})
    _error(response, 422, "invalid_input", "latents[0] contains NaN or infinity")


@pytest.mark.parametrize("cut", [10, 120, -20])
def test_a_truncated_multipart_body_is_malformed_not_an_empty_batch(client: TestClient, cut: int) -> None:
    content_type, body = multipart([encode_png(np.zeros(784))])
    response = client.post("/encode", content=body[:cut], headers={"content-type": content_type})
    _error(response, 400, "malformed_body", "truncated")


def test_a_multipart_body_without_boundary_or_bytes_is_malformed(client: TestClient) -> None:
    _, body = multipart([encode_png(np.zeros(784))])
    response = client.post("/encode", content=body, headers={"content-type": "multipart/form-data"})
    _error(response, 400, "malformed_body", "no boundary")
    response = client.post("/encode", content=b"", headers={"content-type": "multipart/form-data; boundary=x"})
    _error(response, 400, "malformed_body", "empty body")


@pytest.mark.parametrize("header", [";;;", ";charset=utf-8", "json"])
def test_a_malformed_content_type_is_called_malformed_not_missing(client: TestClient, header: str) -> None:
    response = client.post("/encode", content=b"{}", headers={"content-type": header})
    _error(response, 415, "unsupported_media_type", f"malformed content type {header!r}")
    response = client.post("/decode", content=b"{}", headers={"content-type": header})
    _error(response, 415, "unsupported_media_type", "malformed content type")


def test_a_missing_content_type_is_still_called_missing(client: TestClient) -> None:
    _error(client.post("/encode", content=b"{}", headers={"content-type": "  "}), 415, "unsupported_media_type",
           "content type missing")  # fmt: skip
