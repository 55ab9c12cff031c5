"""The client's sans-IO core without a server: inputs, spans under the limits, error replies as exceptions,
the retry policy; and, through httpx.MockTransport, what only a sequence of replies shows (the version
pinned after the first reply, a job put back in order, a connection error retried).

The same behaviours against the real service: test_live_client.py.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import numpy as np
import pytest

from aeclient import (
    AsyncClient,
    Client,
    ConnectionFailed,
    InvalidInput,
    Limits,
    MalformedRequest,
    NotAcceptable,
    Overloaded,
    Retry,
    ServerError,
    TooLarge,
    Unauthorized,
    UnknownModel,
    UnknownVersion,
    UnsupportedMediaType,
)
from aeclient.inputs import Files, Pixels, as_batch, as_latents
from aeclient.jobs import JSON_BYTES_PER_VALUE, Decode, Encode
from aeclient.wire import Reply, Target, parse_retry_after, raise_for_error

REPO = Path(__file__).resolve().parents[2]
SEVEN = REPO / "docs" / "examples" / "seven.png"
LIMITS = Limits(max_images_per_request=4, max_body_bytes=64 * 1024)


def error_reply(status: int, code: str, headers: dict[str, str] | None = None, **details: object) -> Reply:
    body = httpx.Response(status, json={"error": {"code": code, "message": f"a {code}", **details}}).content
    return Reply(status, httpx.Headers(headers or {}), body)


# ---------------------------------------------------------------------------- inputs


def test_arrays_of_every_accepted_kind_become_pixel_rows() -> None:
    floats = np.linspace(0, 1, 784, dtype=np.float64).reshape(28, 28)
    assert as_batch(floats).rows.shape == (1, 784) and as_batch(floats).rows.dtype == np.float32
    stacked = as_batch([floats, floats])
    assert isinstance(stacked, Pixels) and stacked.rows.shape == (2, 784)
    ints = as_batch(np.full((3, 784), 255, np.int64))
    assert isinstance(ints, Pixels) and ints.rows.dtype == np.uint8 and ints.as_unit_floats().max() == 1.0
    assert np.array_equal(as_batch(floats).as_uint8(), np.rint(floats.reshape(1, 784) * 255).astype(np.uint8))


def test_files_paths_pil_images_and_bytes_become_multipart_parts() -> None:
    from PIL import Image

    batch = as_batch([SEVEN, str(SEVEN), Image.open(SEVEN), SEVEN.read_bytes(), b"\xff\xd8\xff\xe0jpeg"])
    assert isinstance(batch, Files)
    assert [name for name, _, _ in batch.parts][:2] == ["seven.png", "seven.png"]
    assert [kind for _, _, kind in batch.parts] == ["image/png"] * 4 + ["image/jpeg"]
    assert batch.parts[0][1] == SEVEN.read_bytes() == batch.parts[3][1]


@pytest.mark.parametrize(
    ("images", "index", "fragment"),
    [
        (np.r_[np.zeros((2, 784)), np.full((1, 784), np.nan)], 2, "NaN"),
        (np.r_[np.zeros((3, 784)), np.full((1, 784), 1.5)], 3, "outside [0, 1]"),
        (np.r_[np.zeros((1, 784), np.int64), np.full((1, 784), 256)], 1, "outside 0-255"),
        (np.zeros((2, 780)), None, "shape [2, 780]"),
        (np.zeros((0, 784)), None, "empty"),
        ([SEVEN, np.zeros(784)], None, "not a mix"),
        ([Path("no-such-digit.png")], 0, "cannot read"),
    ],
)
def test_bad_images_are_refused_before_sending_with_their_index(images: object, index: int | None,
                                                                 fragment: str) -> None:  # fmt: skip
    with pytest.raises(InvalidInput, match=None) as caught:
        as_batch(images)
    assert fragment in str(caught.value) and caught.value.index == index and caught.value.status is None


def test_bad_latents_are_refused_before_sending() -> None:
    assert as_latents([0.5, -1]).shape == (1, 2)
    with pytest.raises(InvalidInput) as caught:
        as_latents([[0, 0], [0, np.inf]])
    assert caught.value.index == 1
    with pytest.raises(InvalidInput):
        as_latents(np.zeros((0, 2)))


# ---------------------------------------------------------------------------- spans and requests


def test_spans_respect_the_image_limit_and_the_chunk_size() -> None:
    job = Encode(as_batch(np.zeros((10, 784), np.uint8)), Target(), "raw")
    assert job.spans(LIMITS) == [(0, 4), (4, 8), (8, 10)]
    assert job.spans(LIMITS, chunk_size=3) == [(0, 3), (3, 6), (6, 9), (9, 10)]
    assert job.spans(LIMITS, chunk_size=100) == job.spans(LIMITS)  # never above the service's limit
    assert Encode(as_batch(np.zeros((4, 784), np.uint8)), Target(), "raw").spans(LIMITS) == [(0, 4)]


def test_spans_respect_the_body_limit_and_fit_it() -> None:
    limits = Limits(max_images_per_request=1000, max_body_bytes=200_000)
    job = Encode(as_batch(np.random.default_rng(0).random((50, 784), np.float32)), Target(), "json")
    spans = job.spans(limits)
    per_request = (200_000 - 1024) // (784 * JSON_BYTES_PER_VALUE)
    assert [stop - start for start, stop in spans][:-1] == [per_request] * (len(spans) - 1)
    for span in spans:
        call = job.call(span, Target())
        assert call.content is not None and len(call.content) <= limits.max_body_bytes
    files = Encode(as_batch([SEVEN] * 9), Target(), "raw")
    small = Limits(max_images_per_request=1000, max_body_bytes=1024 + 3 * (SEVEN.stat().st_size + 300))
    assert files.spans(small) == [(0, 3), (3, 6), (6, 9)]


def test_calls_say_model_version_and_formats() -> None:
    pixels = as_batch(np.zeros((2, 784), np.uint8))
    raw = Encode(pixels, Target("mlp2-p2", "latest"), "raw").call((0, 2), Target("mlp2-p2", "latest"))
    assert raw.params == {"model": "mlp2-p2", "version": "latest"} and raw.content == bytes(2 * 784)
    assert raw.headers == {"accept": "application/octet-stream", "content-type": "application/octet-stream"}
    as_json = Decode(as_latents([[0.0, 1.0]]), Target(), "json", floats=True).call((0, 1), Target(None, 3))
    assert as_json.params == {"version": "3"} and as_json.content == b'{"latents":[[0.0,1.0]]}'
    upload = Encode(as_batch([SEVEN]), Target(), "raw").call((0, 1), Target())
    assert upload.files == [("file", ("seven.png", SEVEN.read_bytes(), "image/png"))] and upload.content is None


# ---------------------------------------------------------------------------- replies


@pytest.mark.parametrize(
    ("status", "code", "details", "kind"),
    [
        (400, "malformed_body", {}, MalformedRequest),
        (401, "unauthorized", {}, Unauthorized),
        (404, "not_found", {"available": ["mlp2-p2"]}, UnknownModel),
        (404, "not_found", {"available_versions": [1, 2]}, UnknownVersion),
        (406, "not_acceptable", {}, NotAcceptable),
        (413, "payload_too_large", {"limit": 64}, TooLarge),
        (415, "unsupported_media_type", {}, UnsupportedMediaType),
        (422, "invalid_input", {"index": 2}, InvalidInput),
        (503, "overloaded", {}, Overloaded),
        (500, "internal_error", {}, ServerError),
    ],
)
def test_each_error_reply_raises_its_type_with_its_details(status: int, code: str, details: dict,
                                                           kind: type) -> None:  # fmt: skip
    with pytest.raises(kind) as caught:
        raise_for_error(error_reply(status, code, {"Retry-After": "2"} if status == 503 else None, **details))
    error = caught.value
    assert (error.status, error.code, error.message) == (status, code, f"a {code}")
    assert {key: error.details[key] for key in details} == details
    if kind is UnknownVersion:
        assert error.available_versions == [1, 2] and isinstance(error, UnknownModel)
    if kind is TooLarge:
        assert error.limit == 64
    if kind is Overloaded:
        assert error.retry_after == 2.0


def test_an_error_index_names_the_item_of_the_call_not_of_the_chunk() -> None:
    with pytest.raises(InvalidInput) as caught:
        raise_for_error(error_reply(422, "invalid_input", index=3), offset=40)
    assert caught.value.index == 43 and "item 43 of the call" in str(caught.value)


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert parse_retry_after("3") == 3.0 and parse_retry_after(None) is None and parse_retry_after("soon") is None
    later = parse_retry_after(format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True))
    assert later is not None and 25 < later <= 30
    assert parse_retry_after(format_datetime(datetime(2000, 1, 1, tzinfo=UTC), usegmt=True)) == 0.0


def test_retry_policy_honours_retry_after_backs_off_caps_and_never_retries_a_4xx() -> None:
    retry = Retry(attempts=4, backoff=0.1, max_wait=5.0)
    busy = error_reply(503, "overloaded", {"Retry-After": "2"})
    assert all(2.0 <= retry.wait(attempt, busy) <= 2.1 for attempt in (1, 2, 3))  # type: ignore[operator]
    assert retry.wait(4, busy) is None  # attempts spent
    assert Retry(max_wait=0.5).wait(1, busy) == 0.5
    backoffs = [retry.wait(attempt, None) for attempt in (1, 2, 3)]
    assert [0.05 <= backoffs[0] <= 0.1, 0.1 <= backoffs[1] <= 0.2, 0.2 <= backoffs[2] <= 0.4] == [True] * 3  # type: ignore[operator]
    for status in (400, 401, 404, 413, 422):
        assert retry.wait(1, error_reply(status, "x")) is None
    assert retry.wait(1, error_reply(429, "overloaded", {"Retry-After": "1"})) is not None  # overload, as 503
    assert retry.wait(1, Reply(200, httpx.Headers(), b"")) is None


# ---------------------------------------------------------------------------- through a mock transport


class FakeService:
    """Answers /models and /encode like the service (p = 2: each code is the image's first two pixels);
    answers X-Model-Version 7 to an unpinned request and 8 once `stable` has moved."""

    def __init__(self, fail_first: int = 0) -> None:
        self.requests: list[httpx.Request] = []
        self.fail_first = fail_first

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if len(self.requests) <= self.fail_first:
            raise httpx.ConnectError("connection refused", request=request)
        if request.url.path == "/models":
            return httpx.Response(200, json={"default_model": "m", "models": [], "limits": {
                "max_images_per_request": 3, "max_body_bytes": 1 << 20}})  # fmt: skip
        pixels = np.frombuffer(request.content, np.uint8).reshape(-1, 784)
        version = request.url.params.get("version", "7" if len(self.requests) <= 2 else "8")
        codes = pixels[:, :2].astype("<f4")
        headers = {"X-Shape": f"{len(codes)},2", "X-Model": "m", "X-Model-Version": version}
        return httpx.Response(200, content=codes.tobytes(), headers=headers)


def test_a_job_is_pinned_to_the_version_that_answered_first_and_reassembled_in_order() -> None:
    fake = FakeService()
    images = np.arange(10 * 784).reshape(10, 784) % 256
    seen: list[int] = []
    with Client(http=httpx.Client(transport=httpx.MockTransport(fake)), concurrency=3) as client:
        codes = client.encode(images.astype(np.uint8), progress=seen.append)
    np.testing.assert_array_equal(codes, images[:, :2].astype(np.float32))
    encodes = [r for r in fake.requests if r.url.path == "/encode"]
    assert len(encodes) == 4 and "version" not in encodes[0].url.params
    assert {r.url.params["version"] for r in encodes[1:]} == {"7"} and {r.url.params["model"] for r in encodes[1:]} == {
        "m"
    }
    assert sorted(seen) == [1, 3, 3, 3]


def test_connection_errors_are_retried_then_given_up_both_clients() -> None:
    fake = FakeService(fail_first=2)
    retry = Retry(attempts=3, backoff=0.001)
    with Client(http=httpx.Client(transport=httpx.MockTransport(fake)), retry=retry) as client:
        assert client.encode(np.zeros((2, 784), np.uint8)).shape == (2, 2)
    assert len(fake.requests) == 4  # /models three times, then /encode

    async def run() -> None:
        dead = FakeService(fail_first=100)
        http = httpx.AsyncClient(transport=httpx.MockTransport(dead))
        async with AsyncClient(http=http, retry=retry) as client:
            with pytest.raises(ConnectionFailed) as caught:
                await client.encode(np.zeros((2, 784), np.uint8))
        await http.aclose()
        assert caught.value.attempts == 3 and len(dead.requests) == 3

    asyncio.run(run())
