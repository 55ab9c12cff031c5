"""Both clients against a real server (the shipped checkpoints, an API key, 64 images per request): every
call, every input kind and transport, checked against the models in-process; jobs split at the limits
and put back in order; errors as their types, a 4xx never retried (the server's own request counts).

Overload and broken connections: test_live_retries.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from clientsupport import BODY_LIMIT, KEY, LIMIT, decode_in_process, encode_in_process, requests_seen, write_pngs
from liveserver import REPO, LiveServer

from aeclient import (
    InvalidInput,
    LatentMap,
    Limits,
    MalformedRequest,
    NotAcceptable,
    TooLarge,
    Unauthorized,
    UnknownModel,
    UnknownVersion,
    UnsupportedMediaType,
)
from aeclient.wire import Reply, raise_for_error

pytestmark = pytest.mark.slow  # live servers, browsers, benchmark or long training runs: make test-fast skips them

Connect = Callable[..., object]
Shipped = Callable[[str], torch.nn.Module]


def as_pixels(images: np.ndarray) -> np.ndarray:
    return np.rint(np.asarray(images) * 255).astype(np.int64).reshape(len(images), 28, 28)


def test_encode_every_input_kind_and_transport(service: LiveServer, connect: Connect, test_digits: np.ndarray,
                                               shipped: Shipped, tmp_path: Path) -> None:  # fmt: skip
    digits = test_digits[:20]
    want = encode_in_process(shipped("mlp2-p16"), digits)  # the default model
    client = connect(service, api_key=KEY)
    paths = write_pngs(digits, tmp_path)
    from PIL import Image

    inputs = {
        "floats, raw": digits,
        "floats 28 x 28, json": digits.reshape(-1, 28, 28),
        "uint8": as_pixels(digits).astype(np.uint8),
        "paths": paths,
        "PIL images": [Image.open(path) for path in paths],
        "PNG bytes": [path.read_bytes() for path in paths],
    }
    for what, images in inputs.items():
        transport = "json" if "json" in what else "raw"
        codes = client.encode(images, transport=transport)
        assert codes.dtype == np.float32 and codes.shape == (20, 16), what
        np.testing.assert_allclose(codes, want, rtol=1e-5, atol=1e-5, err_msg=what)
    one = client.encode(digits[3], model="mlp2-p2", version=1)
    np.testing.assert_allclose(one, encode_in_process(shipped("mlp2-p2"), digits[3:4]), atol=1e-5)
    latest = client.encode(digits[:2], model="mlp2-p8", version="latest", transport="json")
    assert latest.shape == (2, 8)


def test_decode_as_uint8_or_floats_over_both_transports(service: LiveServer, connect: Connect,
                                                        shipped: Shipped) -> None:  # fmt: skip
    latents = np.random.default_rng(0).normal(size=(70, 2)).astype(np.float32)  # 70 > 64: two requests
    want = decode_in_process(shipped("mlp2-p2"), latents).reshape(-1, 28, 28)
    client = connect(service, api_key=KEY, model="mlp2-p2")
    pixels = client.decode(latents)
    assert pixels.dtype == np.uint8 and pixels.shape == (70, 28, 28)
    assert np.abs(pixels.astype(np.int64) - np.rint(want * 255)).max() <= 1
    floats = client.decode(latents, floats=True, transport="json")
    assert floats.dtype == np.float32 and np.abs(floats - want).max() < 1e-6
    eight_bit = client.decode(latents, floats=True)  # raw: 8-bit precision
    assert np.abs(eight_bit - want).max() <= 1 / 255 + 1e-6
    from_json = client.decode(latents, transport="json")
    assert np.abs(from_json.astype(np.int64) - pixels).max() <= 1


def test_reconstruct_gives_images_and_the_mse_of_each(service: LiveServer, connect: Connect, test_digits: np.ndarray,
                                                       shipped: Shipped, tmp_path: Path) -> None:  # fmt: skip
    digits = test_digits[:100]
    model = shipped("mlp2-p16")
    want = decode_in_process(model, encode_in_process(model, digits))
    true_mse = ((want - digits) ** 2).mean(axis=1)
    client = connect(service, api_key=KEY)

    images, mse = client.reconstruct(digits)  # raw: the MSE computed by the client from 8-bit pixels
    assert images.dtype == np.uint8 and images.shape == (100, 28, 28) and mse.shape == (100,)
    assert np.abs(images.reshape(100, -1).astype(np.int64) - np.rint(want * 255)).max() <= 1
    assert np.abs(mse - true_mse).max() < 5e-5 and abs(mse.mean() - true_mse.mean()) < 2e-6
    floats, exact = client.reconstruct(digits, floats=True, transport="json")  # the service's own MSE
    np.testing.assert_allclose(exact, true_mse, rtol=1e-4, atol=1e-7)
    assert floats.dtype == np.float32 and np.abs(floats.reshape(100, -1) - want).max() < 1e-5
    _, from_files = client.reconstruct(write_pngs(digits[:10], tmp_path))  # files: a JSON reply, the service's MSE
    np.testing.assert_allclose(from_files, true_mse[:10], rtol=1e-4, atol=1e-7)


def test_latent_map_alone_and_with_images(service: LiveServer, connect: Connect, test_digits: np.ndarray) -> None:
    client = connect(service, api_key=KEY, model="mlp2-p2")
    plain = client.latent_map(limit=5)
    assert isinstance(plain, LatentMap) and (plain.model, plain.version, plain.projection) == ("mlp2-p2", 1, "identity")
    assert plain.points.shape == (5, 2) and plain.labels.shape == (5,) and plain.positions is None
    placed = client.latent_map(test_digits[:70], limit=3, model="mlp2-p8")  # two requests
    assert placed.projection == "pca" and placed.points.shape == (3, 2) and placed.positions is not None
    assert placed.positions.shape == (70, 2)
    # the first test digits are the map's first points
    np.testing.assert_allclose(placed.positions[:3], placed.points, atol=2e-3)


def test_models_limits_resolution_health_and_readiness(service: LiveServer, connect: Connect) -> None:
    client = connect(service, api_key=KEY)
    catalogue = client.models()
    assert catalogue.default_model == "mlp2-p16" and len(catalogue.models) == 7
    assert catalogue.models["mlp2-p8"].latent_size == 8 and catalogue.models["mlp2-p8"].versions == [1]
    assert catalogue.limits == Limits(LIMIT, BODY_LIMIT) == client.limits()
    assert (client.resolve().name, client.resolve().version) == ("mlp2-p16", 1)
    assert client.resolve("mlp2-p2", "latest").latent_size == 2
    assert client.health() is True
    ready = client.ready()
    assert ready.ready and ready.versions == 7 and ready.skipped == {}


@pytest.mark.parametrize(("count", "requests"), [(LIMIT, 1), (LIMIT + 1, 2), (2 * LIMIT, 2), (2 * LIMIT + 1, 3)])
def test_a_job_is_split_at_the_service_limit_and_put_back_in_order(
    service: LiveServer, connect: Connect, test_digits: np.ndarray, shipped: Shipped, count: int, requests: int
) -> None:
    images = test_digits[:count]
    client = connect(service, api_key=KEY, model="mlp2-p2", concurrency=3)
    before = requests_seen(service, "/encode", 200)
    codes = client.encode(images)
    assert requests_seen(service, "/encode", 200) - before == requests
    np.testing.assert_allclose(codes, encode_in_process(shipped("mlp2-p2"), images), atol=1e-5)


def test_a_json_job_is_split_under_the_body_limit(service: LiveServer, connect: Connect, test_digits: np.ndarray,
                                                  shipped: Shipped) -> None:  # fmt: skip
    client = connect(service, api_key=KEY, model="mlp2-p2", transport="json")
    before = requests_seen(service, "/encode")
    codes = client.encode(test_digits[:30])  # 9 images' JSON fit in 200,000 bytes by the client's upper bound
    assert requests_seen(service, "/encode") - before == 4
    np.testing.assert_allclose(codes, encode_in_process(shipped("mlp2-p2"), test_digits[:30]), atol=1e-5)
    small = connect(service, api_key=KEY, model="mlp2-p2", chunk_size=7)
    before = requests_seen(service, "/encode")
    assert small.encode(test_digits[:30]).shape == (30, 2)
    assert requests_seen(service, "/encode") - before == 5


def test_a_bad_file_deep_in_a_job_is_named_by_its_place_in_the_call(
    service: LiveServer, connect: Connect, test_digits: np.ndarray, tmp_path: Path
) -> None:
    files: list[Path | bytes] = list(write_pngs(test_digits[:100], tmp_path))
    files[70] = b"\x89PNG\r\n\x1a\n not really"
    client = connect(service, api_key=KEY, concurrency=1)
    before = requests_seen(service, "/encode", 422)
    with pytest.raises(InvalidInput) as caught:
        client.encode(files)
    assert caught.value.status == 422 and caught.value.index == 70, caught.value
    assert requests_seen(service, "/encode", 422) - before == 1  # not retried


def test_client_errors_raise_their_types_and_are_never_retried(service: LiveServer, connect: Connect,
                                                               test_digits: np.ndarray) -> None:  # fmt: skip
    client = connect(service, api_key=KEY)
    before = requests_seen(service, "/encode")
    with pytest.raises(UnknownModel) as unknown:
        client.encode(test_digits[:2], model="mlp9-p2")
    assert unknown.value.status == 404 and "mlp2-p16" in unknown.value.available
    with pytest.raises(UnknownVersion) as version:
        client.encode(test_digits[:2], model="mlp2-p2", version=7)
    assert version.value.available_versions == [1] and isinstance(version.value, UnknownModel)
    with pytest.raises(InvalidInput) as malformed:
        client.encode(test_digits[:2], model="Not A Name")
    assert malformed.value.status == 422
    optimistic = connect(service, api_key=KEY, limits=Limits(max_images_per_request=1000, max_body_bytes=1 << 25))
    with pytest.raises(TooLarge) as too_many:
        optimistic.encode(test_digits[:100])
    assert too_many.value.limit == LIMIT
    assert requests_seen(service, "/encode") - before == 4  # one request each

    before = requests_seen(service, "/models", 401)
    for key in (None, "wrong"):
        with pytest.raises(Unauthorized):
            connect(service, api_key=key).encode(test_digits[:2])
    assert requests_seen(service, "/models", 401) - before == 2


def test_the_readme_example_runs_as_written(service: LiveServer, test_digits: np.ndarray, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """README, "Use from Python": its code block, against the test server (its URL and key put in) from the
    repository root, on digits.npy of 100 test digits."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Use from Python") :]
    code = section[section.index("```python\n") + len("```python\n") :]
    code = code[: code.index("```")]
    assert 'Client("http://127.0.0.1:8000", ' in code
    code = code.replace('Client("http://127.0.0.1:8000", ', f'Client("{service.url}", api_key="{KEY}", ')
    code = code.replace('"digits.npy"', repr(str(tmp_path / "digits.npy")))
    np.save(tmp_path / "digits.npy", np.rint(test_digits[:100] * 255).astype(np.uint8).reshape(-1, 28, 28))
    monkeypatch.chdir(REPO)
    names: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), names)
    assert names["codes"].shape == (100, 16) and names["digits"].shape == (100, 28, 28)  # type: ignore[attr-defined]
    assert names["mse"].shape == (100,) and names["where"].positions.shape == (10, 2)  # type: ignore[attr-defined]


def test_the_services_own_error_replies_map_to_their_types(service: LiveServer) -> None:
    """Mistakes the client never makes, sent by hand: the real replies still become the right exceptions."""
    auth = {"authorization": f"Bearer {KEY}"}
    raw = {"content-type": "application/octet-stream"}
    cases = [
        (MalformedRequest, {"content": b'{"images": [[0.1,', "headers": auth | {"content-type": "application/json"}}),
        (NotAcceptable, {"content": bytes(784), "headers": auth | raw, "params": {"format": "png"}}),
        (UnsupportedMediaType, {"content": b"0.5", "headers": auth | {"content-type": "text/plain"}}),
        (UnsupportedMediaType, {"content": bytes(784), "headers": auth | raw | {"content-encoding": "gzip"}}),
    ]
    with service.client() as http:
        for kind, request in cases:
            response = http.post("/encode", **request)
            with pytest.raises(kind) as caught:
                raise_for_error(Reply(response.status_code, response.headers, response.content))
            assert caught.value.status == response.status_code and caught.value.message, response.text
