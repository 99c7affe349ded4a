"""Text-to-image with diffusers: SD 1.5 and SDXL checkpoints behind A1111 sampler names.

Importing this package loads no torch or diffusers: the API layer reads the tables (checkpoint
configs, sampler recipes) without the image stack; torch loads when an engine is built. The
public names and ranges are in ``minitoolai.catalog``; the engine contract it meets
(``ImageEngine``, ``ImageSpec``, ``GeneratedImage``) is in ``minitoolai.engines.base``.
"""

from minitoolai.engines.diffusion.cache import ByteBudgetLRU, CacheStats
from minitoolai.engines.diffusion.checkpoints import (
    DEFAULT_CHECKPOINTS,
    CheckpointConfig,
    resolve_checkpoints,
)
from minitoolai.engines.diffusion.engine import DiffusionEngine
from minitoolai.engines.diffusion.errors import (
    CheckpointConfigError,
    UnknownImageModel,
    WeightsUnavailable,
)
from minitoolai.engines.diffusion.schedulers import SCHEDULERS, SamplerRecipe, build_scheduler
from minitoolai.engines.diffusion.weights import LocatedWeights, locate, pull, weights_present

__all__ = [
    "DEFAULT_CHECKPOINTS",
    "SCHEDULERS",
    "ByteBudgetLRU",
    "CacheStats",
    "CheckpointConfig",
    "CheckpointConfigError",
    "DiffusionEngine",
    "LocatedWeights",
    "SamplerRecipe",
    "UnknownImageModel",
    "WeightsUnavailable",
    "build_scheduler",
    "locate",
    "pull",
    "resolve_checkpoints",
    "weights_present",
]
