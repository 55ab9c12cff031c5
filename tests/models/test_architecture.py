import pytest
import torch

from models import CONFIGS, Autoencoder, AutoencoderConfig, UnknownConfigError, build_model, get_config


@pytest.fixture(params=list(CONFIGS))
def model(request: pytest.FixtureRequest) -> Autoencoder:
    torch.manual_seed(0)
    return build_model(request.param)


@pytest.mark.parametrize("batch", [1, 17])
def test_shapes_and_range(model: Autoencoder, batch: int) -> None:
    model.eval()  # batch norm needs more than one image per batch only in training mode
    images = torch.rand(batch, 784)
    codes = model.encode(images)
    assert codes.shape == (batch, model.config.latent_size)
    assert model.decode(codes).shape == (batch, 784)
    out = model(images)
    assert out.shape == (batch, 784)
    assert not torch.isnan(out).any()
    assert out.min() >= 0 and out.max() <= 1


def test_every_parameter_gets_a_gradient(model: Autoencoder) -> None:
    model.train()
    loss = torch.nn.functional.mse_loss(model(torch.rand(8, 784)), torch.rand(8, 784))
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_configurations_follow_the_report() -> None:
    assert get_config("mlp4-p2").hidden_sizes == (512, 256, 128, 64)
    assert get_config("mlp2bn-p2").batch_norm
    assert {c.latent_size for c in CONFIGS.values()} == {2, 8, 16}
    bn = build_model("mlp2bn-p2")
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in bn.modules()) == 4  # two hidden layers, mirrored
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in build_model("mlp2-p2").modules())


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(UnknownConfigError) as info:
        get_config("mlp3-p2")
    message = str(info.value)
    assert "mlp3-p2" in message
    assert all(name in message for name in CONFIGS)


def test_config_round_trips_through_dict() -> None:
    config = get_config("mlp2bn-p2")
    assert AutoencoderConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hidden_sizes": (), "latent_size": 2}, "hidden_sizes"),
        ({"hidden_sizes": (0,), "latent_size": 2}, "hidden_sizes"),
        ({"hidden_sizes": (8,), "latent_size": 0}, "latent_size"),
        ({"hidden_sizes": (8,), "latent_size": 2, "activation": "swish"}, "activation"),
    ],
)
def test_invalid_config_is_rejected(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AutoencoderConfig(**kwargs)


def test_encode_all_and_decode_all_match_one_pass_in_any_batch_size() -> None:
    model = build_model("mlp2bn-p2").eval()
    images = torch.rand(10, 784)
    codes = model.encode_all(images, batch_size=3)  # 3 + 3 + 3 + 1: the last batch is short
    assert not codes.requires_grad
    with torch.no_grad():
        assert torch.allclose(codes, model.encode(images), atol=1e-6)
        assert torch.allclose(model.decode_all(codes, batch_size=4), model.decode(codes), atol=1e-6)
    assert model.encode_all(images[:0]).shape == (0, 2)
