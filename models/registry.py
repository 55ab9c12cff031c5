"""The named configurations of the reference report (see DESIGN.md)."""

from __future__ import annotations

from models.architecture import Autoencoder, AutoencoderConfig

CONFIGS: dict[str, AutoencoderConfig] = {
    "mlp1-p2": AutoencoderConfig(hidden_sizes=(128,), latent_size=2),
    "mlp1-p16": AutoencoderConfig(hidden_sizes=(128,), latent_size=16),
    "mlp2-p2": AutoencoderConfig(hidden_sizes=(256, 128), latent_size=2),
    "mlp2-p8": AutoencoderConfig(hidden_sizes=(256, 128), latent_size=8),
    "mlp2-p16": AutoencoderConfig(hidden_sizes=(256, 128), latent_size=16),
    "mlp2bn-p2": AutoencoderConfig(hidden_sizes=(256, 128), latent_size=2, batch_norm=True),
    "mlp4-p2": AutoencoderConfig(hidden_sizes=(512, 256, 128, 64), latent_size=2),
}


class UnknownConfigError(KeyError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"unknown configuration {name!r}; valid names: {', '.join(CONFIGS)}")

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


def get_config(name: str) -> AutoencoderConfig:
    try:
        return CONFIGS[name]
    except KeyError:
        raise UnknownConfigError(name) from None


def build_model(name: str) -> Autoencoder:
    return Autoencoder(get_config(name))
