"""Every setting of the service, from AE_* environment variables or passed by tests."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AE_", env_file=".env", extra="ignore")

    store: Path = Path("checkpoints")
    default_model: str = "mlp2-p16"  # the best reconstructions among the shipped configurations
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # Micro-batching: a batch leaves when it holds max_batch_size images or its oldest
    # request has waited max_delay_ms; the queue holds at most queue_size images per model.
    max_batch_size: int = Field(default=256, ge=1)
    max_delay_ms: float = Field(default=2.0, ge=0)
    queue_size: int = Field(default=8192, ge=1)
    max_images_per_request: int = Field(default=4096, ge=1)
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    latent_map_limit: int = Field(default=2000, ge=1)  # default number of test points on /latent-map
    cors_origins: list[str] = []
    log_level: str = "info"
    api_key: SecretStr | None = None  # when set, every endpoint but health needs "Authorization: Bearer <key>"
    host: str = "127.0.0.1"
    port: int = 8000
