"""GET /models states the limits of one request, so that clients split large jobs under them (aeclient does)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings


def test_models_lists_the_request_limits_the_service_enforces(configure: Callable[..., Settings]) -> None:
    settings = configure(max_images_per_request=3, max_body_bytes=4096)
    with TestClient(create_app(settings)) as client:
        limits = client.get("/models").json()["limits"]
        assert limits == {"max_images_per_request": 3, "max_body_bytes": 4096}
        raw = {"headers": {"content-type": "application/octet-stream"}}
        at_limit = client.post("/encode", content=np.zeros((3, 784), np.uint8).tobytes(), **raw)
        over = client.post("/encode", content=np.zeros((4, 784), np.uint8).tobytes(), **raw)
        too_long = client.post("/encode", content=np.zeros((6, 784), np.uint8).tobytes(), **raw)
    assert at_limit.status_code == 200, at_limit.text
    assert over.status_code == 413 and over.json()["error"]["limit"] == 3
    assert too_long.status_code == 413 and too_long.json()["error"]["limit"] == 4096
