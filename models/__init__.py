"""What training and the service share: architectures, named configurations, checkpoints."""

from models.architecture import Autoencoder, AutoencoderConfig
from models.checkpoint import Checkpoint, CheckpointError, LatentSet, load_checkpoint
from models.registry import CONFIGS, UnknownConfigError, build_model, get_config
from models.store import CheckpointStore, InvalidNameError

__all__ = [
    "CONFIGS",
    "Autoencoder",
    "AutoencoderConfig",
    "Checkpoint",
    "CheckpointError",
    "CheckpointStore",
    "InvalidNameError",
    "LatentSet",
    "UnknownConfigError",
    "build_model",
    "get_config",
    "load_checkpoint",
]
