"""Micro-batching: shared forward passes, order, bounded queue, isolation of errors."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from asgi_lifespan import LifespanManager
from inprocess import serve

from service.app import create_app
from service.core import MicroBatcher, Pass, QueueFull, run_pass
from service.settings import Settings

pytestmark = pytest.mark.anyio


def _batch_sizes(app: object, version: int = 2) -> tuple[float, float]:
    """(number of forward passes, images in them) for the default model's served version."""
    registry = app.state.metrics.registry  # type: ignore[attr-defined]
    labels = {"model": "mlp2-p2", "version": str(version)}
    count = registry.get_sample_value("ae_batch_images_count", labels) or 0.0
    total = registry.get_sample_value("ae_batch_images_sum", labels) or 0.0
    return count, total


async def test_concurrent_single_image_requests_share_forward_passes(
    configure: Callable[..., Settings], digits: np.ndarray
) -> None:
    async with serve(configure(max_delay_ms=50, max_batch_size=64)) as (client, app):
        responses = await asyncio.gather(
            *(client.post("/reconstruct", json={"images": [digits[i % 8].tolist()]}) for i in range(32))
        )
        assert all(r.status_code == 200 for r in responses)
        passes, images = _batch_sizes(app)
        assert images == 32
        assert passes <= 4, f"32 concurrent requests took {passes} forward passes"
        # each client got its own image back, not a neighbour's
        alone = (await client.post("/reconstruct", json={"images": [digits[3].tolist()]})).json()
        # (batch size changes the float rounding of a matmul, not the result)
        np.testing.assert_allclose(responses[3].json()["reconstructions"], alone["reconstructions"], atol=1e-6)


async def test_a_request_larger_than_the_batch_is_split_and_reassembled(
    configure: Callable[..., Settings], digits: np.ndarray
) -> None:
    images = np.concatenate([digits, digits[::-1]])  # 16 images, batches of 3
    async with serve(configure(max_batch_size=3, max_delay_ms=1)) as (client, app):
        whole = (await client.post("/reconstruct", json={"images": images.tolist()})).json()
        passes, total = _batch_sizes(app)
        assert total == 16 and passes >= 6
        for index in (0, 7, 8, 15):
            one = (await client.post("/reconstruct", json={"images": [images[index].tolist()]})).json()
            np.testing.assert_allclose(whole["reconstructions"][index], one["reconstructions"][0], atol=1e-6)
            assert whole["mse"][index] == pytest.approx(one["mse"][0])


async def test_one_batch_mixes_endpoints_and_body_formats(
    configure: Callable[..., Settings], digits: np.ndarray
) -> None:
    """/encode, /reconstruct (JSON floats and raw uint8 bytes) and /decode queued together: each gets its answer."""
    raw = np.rint(digits * 255).astype(np.uint8)
    async with serve(configure(max_delay_ms=100, max_batch_size=64)) as (client, app):
        codes = (await client.post("/encode", json={"images": digits.tolist()})).json()["latents"]
        before, images_before = _batch_sizes(app)
        octets = {"Content-Type": "application/octet-stream", "Accept": "application/octet-stream"}
        encoded, from_json, from_raw, decoded = await asyncio.gather(
            client.post("/encode", json={"images": digits[:3].tolist()}),
            client.post("/reconstruct", json={"images": (raw[3:5] / 255).tolist()}),
            client.post("/reconstruct", content=raw[3:5].tobytes(), headers=octets),
            client.post("/decode", json={"latents": codes[5:7]}),
        )
        passes, images = _batch_sizes(app)
        # one queue, one pass per kind: the JSON reconstruction's pass computes MSEs, the raw one's not
        assert (passes - before, images - images_before) == (4, 9)
        np.testing.assert_allclose(encoded.json()["latents"], codes[:3], atol=1e-5)
        pixels = np.frombuffer(from_raw.content, np.uint8).reshape(2, 784)
        np.testing.assert_array_equal(pixels, np.rint(np.array(from_json.json()["reconstructions"]) * 255))
        assert len(decoded.json()["images"]) == 2


async def test_each_kind_of_pass_computes_what_its_response_needs(
    configure: Callable[..., Settings], digits: np.ndarray
) -> None:
    async with serve(configure()) as (_, app):
        served = app.state.catalog.resolve("mlp2-p2", None)  # type: ignore[attr-defined]

        def forward(what: Pass, inputs: np.ndarray) -> dict[str, np.ndarray]:
            return run_pass(served.checkpoint.model, served.device, what, [inputs])

        out = {what: forward(what, digits[:3]) for what in Pass if not what.takes_codes}
        codes = out["encode"]["codes"]
        for what in (Pass.DECODE, Pass.DECODE_PIXELS):
            out[what] = forward(what, codes)
        with pytest.raises(ValueError, match="'score' is not a valid Pass"):
            forward("score", digits[:3])  # type: ignore[arg-type]
    assert {kind: set(outputs) for kind, outputs in out.items()} == {
        "encode": {"codes"},
        "decode": {"images", "decodable"},  # decoding passes flag rows whose image is not finite
        "decode_pixels": {"images", "decodable"},
        "reconstruct": {"images"},
        "reconstruct_pixels": {"images"},
        "reconstruct_mse": {"images", "mse"},
        "reconstruct_all": {"codes", "images", "mse"},
    }
    images = out["reconstruct"]["images"]
    np.testing.assert_array_equal(images, out["reconstruct_mse"]["images"])
    np.testing.assert_allclose(out["decode"]["images"], images, atol=1e-6)
    np.testing.assert_allclose(out["reconstruct_mse"]["mse"], ((images - digits[:3]) ** 2).mean(axis=1), rtol=1e-5)
    for key in ("images", "mse"):
        np.testing.assert_array_equal(out["reconstruct_all"][key], out["reconstruct_mse"][key])
    np.testing.assert_array_equal(out["reconstruct_all"]["codes"], codes)
    for kind in ("reconstruct", "decode"):  # the pixel kinds: the same images rounded half to even, clipped, uint8
        expected = np.clip(np.rint(out[kind]["images"] * np.float32(255)), 0, 255).astype(np.uint8)
        assert out[f"{kind}_pixels"]["images"].dtype == np.uint8
        np.testing.assert_array_equal(out[f"{kind}_pixels"]["images"], expected)


async def test_a_full_queue_answers_503_with_retry_after(configure: Callable[..., Settings]) -> None:
    async with serve(configure(queue_size=4, max_batch_size=64, max_delay_ms=1000)) as (client, app):
        waiting = [asyncio.ensure_future(client.post("/encode", json={"images": [[0.1] * 784] * 2})) for _ in range(2)]
        batcher = app.state.catalog.resolve("mlp2-p2", None).batcher  # type: ignore[attr-defined]
        while batcher.queued_images() < 4:  # both are queued, waiting for the batch to fill or the delay
            await asyncio.sleep(0.005)
        refused = await client.post("/encode", json={"images": [[0.1] * 784]})
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["error"]["code"] == "overloaded"
        assert [r.status_code for r in await asyncio.gather(*waiting)] == [200, 200]


async def test_a_bad_request_does_not_harm_its_batch_neighbours(
    configure: Callable[..., Settings], digits: np.ndarray
) -> None:
    async with serve(configure(max_delay_ms=50)) as (client, _app):
        good = [client.post("/encode", json={"images": [digits[i].tolist()]}) for i in range(6)]
        bad = [client.post("/encode", json={"images": [[2.0] * 784]}), client.post("/encode", json={"images": [[]]})]
        responses = await asyncio.gather(*good, *bad)
        assert [r.status_code for r in responses] == [200] * 6 + [422, 422]


async def test_shutdown_finishes_what_is_queued(configure: Callable[..., Settings], digits: np.ndarray) -> None:
    app = create_app(configure(max_delay_ms=300))
    manager = LifespanManager(app)
    await manager.__aenter__()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://test")
    pending = [asyncio.ensure_future(client.post("/encode", json={"images": [digits[i].tolist()]})) for i in range(3)]
    batcher = app.state.catalog.resolve("mlp2-p2", None).batcher  # type: ignore[attr-defined]
    while batcher.queued_images() < 3:  # all three are queued (the delay holds them there)
        await asyncio.sleep(0.005)
    await manager.__aexit__(None, None, None)  # drains: the waiting requests are answered, not dropped
    assert [r.status_code for r in await asyncio.gather(*pending)] == [200, 200, 200]
    await client.aclose()


def _echo(what: Pass, parts: list[np.ndarray]) -> dict[str, np.ndarray]:
    inputs = np.concatenate(parts)
    if (inputs < 0).any():
        raise RuntimeError("the device failed")
    return {"out": inputs * 2}


async def test_batcher_error_reaches_exactly_its_batch() -> None:
    batches: list[int] = []
    batcher = MicroBatcher(_echo, max_batch_size=4, max_delay=0.05, queue_size=100, on_batch=batches.append)
    batcher.start()
    first = [asyncio.ensure_future(batcher.submit(Pass.ENCODE, np.full((1, 3), v, np.float32))) for v in (1, -1, 2)]
    await asyncio.sleep(0.2)
    second = await batcher.submit(Pass.ENCODE, np.full((2, 3), 5, np.float32))
    results = await asyncio.gather(*first, return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)  # one failing pass fails its whole batch
    np.testing.assert_array_equal(second["out"], np.full((2, 3), 10))  # the next batch is unharmed
    assert batches == [3, 2]
    await batcher.close()


async def test_batcher_skips_requests_whose_client_left_and_bounds_its_queue() -> None:
    batches: list[int] = []
    batcher = MicroBatcher(_echo, max_batch_size=8, max_delay=0.1, queue_size=6, on_batch=batches.append)
    batcher.start()
    gone = asyncio.ensure_future(batcher.submit(Pass.ENCODE, np.ones((3, 2), np.float32)))
    kept = asyncio.ensure_future(batcher.submit(Pass.ENCODE, np.ones((2, 2), np.float32)))
    await asyncio.sleep(0.01)
    with pytest.raises(QueueFull):
        await batcher.submit(Pass.ENCODE, np.ones((2, 2), np.float32))  # 5 queued + 2 > 6
    gone.cancel()  # what a disconnecting client does to its request
    assert (await kept)["out"].shape == (2, 2)
    assert batches == [2]  # the cancelled request cost no forward pass
    await batcher.close()


@pytest.mark.parametrize("settle", [True, False])
async def test_clients_that_answer_each_reply_share_every_pass(monkeypatch: pytest.MonkeyPatch, settle: bool) -> None:
    """Eight clients that send their next request a few event-loop turns after each reply (as over
    sockets): the batcher's turns between passes let all eight join each pass; without them,
    passes alternate between whoever came back first and the stragglers."""
    if not settle:
        monkeypatch.setattr("service.core.batcher.SETTLE_TURNS", 0)  # the control: shows the test can fail
    batches: list[int] = []
    batcher = MicroBatcher(_echo, max_batch_size=64, max_delay=0, queue_size=100, on_batch=batches.append)
    batcher.start()

    async def client(index: int) -> None:
        for _ in range(10):
            await batcher.submit(Pass.ENCODE, np.full((1, 2), index, np.float32))
            for _ in range(index % 4):  # the reply's way out and the next request's way in
                await asyncio.sleep(0)

    await asyncio.gather(*(client(i) for i in range(8)))
    await batcher.close()
    assert sum(batches) == 80
    if settle:
        assert batches == [8] * 10
    else:
        assert len(batches) > 10


class _Overlap:
    """A forward pass that takes a while and records how many passes ran at once, at most."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = self.most = 0
        self.batches: list[int] = []

    def __call__(self, what: Pass, parts: list[np.ndarray]) -> dict[str, np.ndarray]:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.batches.append(sum(len(part) for part in parts))
        time.sleep(0.05)
        with self.lock:
            self.running -= 1
        return _echo(what, parts)


@pytest.mark.parametrize("workers", [1, 2])
async def test_a_backlog_of_full_batches_runs_on_every_worker(workers: int) -> None:
    forward = _Overlap()
    with ThreadPoolExecutor(workers) as pool:
        batcher = MicroBatcher(forward, max_batch_size=4, max_delay=0, queue_size=100, executor=pool, workers=workers)
        batcher.start()
        results = await asyncio.gather(*(batcher.submit(Pass.ENCODE, np.full((4, 2), i, np.float32)) for i in range(6)))
        await batcher.close()
    assert [r["out"][0, 0] for r in results] == [2 * i for i in range(6)]  # each its own rows, in order
    assert forward.batches == [4] * 6 and forward.most == workers


async def test_without_a_full_batch_passes_run_one_at_a_time_and_the_next_grows() -> None:
    forward = _Overlap()
    with ThreadPoolExecutor(2) as pool:
        batcher = MicroBatcher(forward, max_batch_size=64, max_delay=0, queue_size=100, executor=pool, workers=2)
        batcher.start()
        first = batcher.submit(Pass.ENCODE, np.ones((1, 2), np.float32))
        await asyncio.sleep(0.01)  # its pass is running
        rest = [batcher.submit(Pass.ENCODE, np.ones((1, 2), np.float32)) for _ in range(5)]
        await asyncio.gather(first, *rest)
        await batcher.close()
    assert forward.batches == [1, 5] and forward.most == 1
