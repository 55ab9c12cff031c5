"""A request's images are checked against a pixel budget before any is decoded; costly work leaves the loop."""

from __future__ import annotations

import asyncio
import base64
import io
import threading
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient
from inprocess import serve
from PIL import Image

import service.budget
import service.codecs
from bench.hostile import multipart, square_png, strip_png
from service.app import create_app
from service.budget import INLINE_BYTES, INLINE_IMAGES, INLINE_PIXELS, MAX_SIDE, Offload, parse_on_loop
from service.errors import BadInput, Busy
from service.settings import Settings

RAW = {"content-type": "application/octet-stream"}
JSON = {"content-type": "application/json"}


def _error(response: Any, status: int, code: str, *fragments: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    for fragment in fragments:
        assert fragment in error["message"], error["message"]
    return error


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


def _as_base64(*blobs: bytes) -> dict[str, list[str]]:
    return {"images_png": [base64.b64encode(blob).decode() for blob in blobs]}


@pytest.fixture
def budget_client(configure: Callable[..., Settings]) -> Iterator[TestClient]:
    """Images of at most 100x100 pixels, and 30,000 pixels a request: three of them."""
    with TestClient(create_app(configure(max_image_pixels=100 * 100, max_request_pixels=3 * 100 * 100))) as client:
        yield client


def test_an_image_exactly_at_the_pixel_limit_passes_and_one_pixel_row_more_is_413(budget_client: TestClient) -> None:
    assert budget_client.post("/encode", json=_as_base64(_png(100, 100))).status_code == 200
    error = _error(budget_client.post("/encode", json=_as_base64(_png(100, 100), _png(100, 101))), 413,
                   "payload_too_large", "images_png[1] (image 1) is 100x101 pixels", "at most 10,000 pixels",
                   "AE_MAX_IMAGE_PIXELS")  # fmt: skip
    assert error["index"] == 1 and error["limit"] == 10_000


def test_the_request_budget_counts_all_its_images(budget_client: TestClient) -> None:
    assert budget_client.post("/encode", files=[("file", (f"{i}.png", _png(100, 100))) for i in range(3)]).is_success
    files = [("file", (f"{i}.png", _png(100, 100))) for i in range(4)]
    error = _error(budget_client.post("/encode", files=files), 413, "payload_too_large",
                   "file '3.png' (image 3) brings the request to 40,000 decoded pixels", "at most 30,000",
                   "AE_MAX_REQUEST_PIXELS")  # fmt: skip
    assert error["index"] == 3 and error["limit"] == 30_000


def test_no_side_may_be_longer_than_max_side(client: TestClient) -> None:
    assert client.post("/encode", content=strip_png(MAX_SIDE), headers={"content-type": "image/png"}).is_success
    response = client.post("/encode", content=strip_png(MAX_SIDE + 1), headers={"content-type": "image/png"})
    _error(response, 413, "payload_too_large", f"body (image 0) is 1x{MAX_SIDE + 1:,} pixels", "no side over 8,192")


@pytest.mark.parametrize("form", ["base64", "multipart", "body"])
def test_a_tall_strip_of_zlib_is_refused_in_every_form_naming_the_image(client: TestClient, form: str) -> None:
    bomb = strip_png(25_000_000)  # 48 KB, 25 million pixels
    assert len(bomb) < 50_000
    if form == "base64":
        response, name = client.post("/encode", json=_as_base64(_png(28, 28), bomb)), "images_png[1] (image 1)"
    elif form == "multipart":
        content_type, body = multipart([_png(28, 28), bomb])
        response = client.post("/encode", content=body, headers={"content-type": content_type})
        name = "file 'file1.png' (image 1)"
    else:
        response, name = client.post("/encode", content=bomb, headers={"content-type": "image/png"}), "body (image 0)"
    _error(response, 413, "payload_too_large", name, "1x25,000,000 pixels")


def test_budgets_are_checked_before_any_image_is_decoded(
    budget_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded: list[Image.Image] = []
    real = service.budget.decode_image

    def counted(image: Image.Image) -> np.ndarray:
        decoded.append(image)
        return real(image)

    monkeypatch.setattr(service.budget, "decode_image", counted)
    _error(budget_client.post("/encode", json=_as_base64(_png(28, 28), _png(28, 28), strip_png(20_000))), 413,
           "payload_too_large", "images_png[2]")  # fmt: skip
    assert decoded == []
    assert budget_client.post("/encode", json=_as_base64(_png(28, 28), _png(28, 28))).is_success
    assert len(decoded) == 2


def test_a_jpeg_counts_the_pixels_it_decodes_to_not_its_full_size(configure: Callable[..., Settings]) -> None:
    photo = Image.new("RGB", (2400, 2400), "white")  # 5.8 million pixels, decoded in grey at 1/8 scale: 300x300
    photo.paste((20, 20, 20), (900, 600, 1500, 1800))
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG")
    with TestClient(create_app(configure(max_image_pixels=300 * 300))) as client:
        assert client.post("/encode", content=buffer.getvalue(), headers={"content-type": "image/jpeg"}).is_success
        response = client.post("/encode", content=_png(301, 300), headers={"content-type": "image/png"})
        _error(response, 413, "payload_too_large", "301x300")


def test_parsing_stays_on_the_loop_only_for_small_bodies() -> None:
    assert parse_on_loop(b"x" * INLINE_BYTES, multipart=False)
    assert not parse_on_loop(b"x" * (INLINE_BYTES + 1), multipart=False)
    assert parse_on_loop(multipart([b"x"] * INLINE_IMAGES)[1], multipart=True)
    assert not parse_on_loop(multipart([b"x"] * (INLINE_IMAGES + 1))[1], multipart=True)


@pytest.fixture
def threads_seen(monkeypatch: pytest.MonkeyPatch) -> dict[str, set[str]]:
    """The names of the threads that parse JSON and decode images, by what they did."""
    seen: dict[str, set[str]] = {"parse": set(), "decode": set()}

    def spy(what: str, work: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def run(argument: Any) -> Any:
            seen[what].add("decode thread" if threading.current_thread().name.startswith("ae-decode") else "loop")
            return work(argument)

        return run

    monkeypatch.setattr(service.codecs, "_parse_json", spy("parse", service.codecs._parse_json))
    monkeypatch.setattr(service.budget, "decode_image", spy("decode", service.budget.decode_image))
    return seen


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"json": {"images": [[0.5] * 784]}}, {"parse": {"loop"}, "decode": set()}),
        ({"json": {"images": [[0.5] * 784] * 32}}, {"parse": {"decode thread"}, "decode": set()}),
        ({"json": _as_base64(_png(28, 28))}, {"parse": {"loop"}, "decode": {"loop"}}),
        ({"files": [("file", ("a.png", _png(28, 28)))] * INLINE_IMAGES}, {"parse": set(), "decode": {"loop"}}),
        ({"files": [("file", ("a.png", _png(28, 28)))] * (INLINE_IMAGES + 1)},
         {"parse": set(), "decode": {"decode thread"}}),
        ({"content": _png(181, 181), "headers": {"content-type": "image/png"}}, {"parse": set(), "decode": {"loop"}}),
        ({"content": _png(182, 181), "headers": {"content-type": "image/png"}},
         {"parse": set(), "decode": {"decode thread"}}),
        ({"content": bytes(784 * 256), "headers": RAW}, {"parse": set(), "decode": set()}),
    ],
    ids=["one-json-image", "json-over-64KiB", "one-base64-png", "8-png-files", "9-png-files", "181x181-png",
         "182x181-png", "raw-256-images"],
)  # fmt: skip
def test_small_work_stays_on_the_event_loop_and_larger_work_goes_to_the_decode_threads(
    client: TestClient, threads_seen: dict[str, set[str]], body: dict[str, Any], where: dict[str, set[str]]
) -> None:
    assert 181 * 181 <= INLINE_PIXELS < 182 * 181
    assert client.post("/encode", **body).status_code == 200
    assert threads_seen == where


@pytest.fixture
def held_decoding(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[threading.Event, threading.Event]]:
    """Image decoding that signals it started, then waits for the release (set on the way out too)."""
    release, started = threading.Event(), threading.Event()
    real = service.budget.decode_image

    def held(image: Image.Image) -> np.ndarray:
        started.set()
        release.wait(30)
        return real(image)

    monkeypatch.setattr(service.budget, "decode_image", held)
    yield started, release
    release.set()


@pytest.mark.anyio
async def test_busy_decode_threads_delay_no_forward_pass_and_no_small_request(
    configure: Callable[..., Settings], held_decoding: tuple[threading.Event, threading.Event]
) -> None:
    started, release = held_decoding
    png, json_body = {"content-type": "image/png"}, orjson.dumps({"images": [[0.5] * 784]})
    async with serve(configure(decode_threads=1)) as (client, _app):
        large = asyncio.ensure_future(client.post("/encode", content=square_png(400), headers=png))
        while not started.is_set():
            await asyncio.sleep(0.01)
        try:
            raw = await asyncio.wait_for(client.post("/encode", content=bytes(784 * 300), headers=RAW), 10)
            assert raw.status_code == 200 and len(raw.json()["latents"]) == 300
            small = await asyncio.wait_for(client.post("/encode", content=json_body, headers=JSON), 10)
            assert small.status_code == 200
            assert not large.done()
        finally:
            release.set()
        assert (await large).status_code == 200


def test_json_bodies_have_a_lower_limit_than_raw_ones(configure: Callable[..., Settings]) -> None:
    with TestClient(create_app(configure(max_json_bytes=4096))) as client:
        body = orjson.dumps({"images": [[0.5] * 784]})
        exact = body + b" " * (4096 - len(body))
        assert client.post("/encode", content=exact, headers=JSON).status_code == 200
        _error(client.post("/encode", content=exact + b" ", headers=JSON), 413, "payload_too_large",
               "exceeds the limit of 4096 bytes (AE_MAX_JSON_BYTES, for JSON bodies)")  # fmt: skip
        _error(client.post("/encode", content=iter([exact, b" "]), headers=JSON), 413, "payload_too_large",
               "AE_MAX_JSON_BYTES")  # fmt: skip
        _error(client.post("/decode", content=exact + b" ", headers=JSON), 413, "payload_too_large", "AE_MAX_JSON")
        assert client.post("/encode", content=bytes(784 * 8), headers=RAW).status_code == 200


@pytest.mark.anyio
async def test_an_error_from_a_decode_thread_leaves_its_frames_and_data_there() -> None:
    def work(size: int) -> None:
        parsed = list(range(size))  # what a large body's parse leaves in the frame
        raise BadInput(f"{len(parsed)} values", index=0)

    with pytest.raises(BadInput, match="1000 values") as caught:
        await Offload(1, 1).run(work, 1000)
    frames = [frame.f_code.co_name for frame, _ in traceback.walk_tb(caught.value.__traceback__)]
    assert "work" not in frames and caught.value.__context__ is None


@pytest.mark.anyio
async def test_decode_work_past_the_queue_limit_is_refused_and_what_was_queued_still_finishes() -> None:
    release = threading.Event()
    offload = Offload(1, 2)

    def held(value: int) -> int:
        release.wait(30)
        return value

    running = asyncio.ensure_future(offload.run(held, 1))
    waiting = asyncio.ensure_future(offload.run(held, 2))
    await asyncio.sleep(0.05)
    with pytest.raises(Busy, match="AE_DECODE_QUEUE") as refused:
        await offload.run(held, 3)
    assert refused.value.status == 503 and refused.value.headers == {"Retry-After": "1"}
    release.set()
    assert (await running, await waiting) == (1, 2)
    await asyncio.sleep(0.05)  # the count drops in the worker thread's done callback
    assert offload.in_flight == 0 and await offload.run(held, 4) == 4


@pytest.mark.anyio
async def test_a_queued_decode_whose_client_left_frees_its_place() -> None:
    release = threading.Event()
    offload = Offload(1, 2)
    running = asyncio.ensure_future(offload.run(release.wait, 30))
    waiting = asyncio.ensure_future(offload.run(release.wait, 30))
    await asyncio.sleep(0.05)
    assert offload.in_flight == 2
    waiting.cancel()  # not started yet: it never runs, and its place is free at once
    await asyncio.sleep(0.05)
    assert offload.in_flight == 1
    release.set()
    assert await running is True


@pytest.mark.anyio
async def test_an_upload_past_the_decode_queue_is_a_503_and_other_requests_are_served(
    configure: Callable[..., Settings], held_decoding: tuple[threading.Event, threading.Event]
) -> None:
    started, release = held_decoding
    png = {"content-type": "image/png"}
    async with serve(configure(decode_threads=1, decode_queue=1)) as (client, _app):
        first = asyncio.ensure_future(client.post("/encode", content=square_png(400), headers=png))
        while not started.is_set():
            await asyncio.sleep(0.01)
        try:
            second = await asyncio.wait_for(client.post("/encode", content=square_png(400), headers=png), 10)
            error = _error(second, 503, "overloaded", "AE_DECODE_QUEUE")
            assert second.headers["retry-after"] == "1" and "retry shortly" in error["message"]
            raw = await asyncio.wait_for(client.post("/encode", content=bytes(784 * 300), headers=RAW), 10)
            assert raw.status_code == 200
        finally:
            release.set()
        assert (await first).status_code == 200
        assert (await client.post("/encode", content=square_png(400), headers=png)).status_code == 200
