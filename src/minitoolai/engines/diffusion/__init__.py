"""Text-to-image with diffusers: SD 1.5 and SDXL checkpoints behind A1111 sampler names.

Importing this package loads no torch or diffusers: the API layer reads the tables (model names,
samplers, checkpoint configs) without the image stack; torch loads when an engine is built.

A worker uses it like this::

    engine = DiffusionEngine(resolve_checkpoints(settings.image_models))
    result = engine.generate(ImageSpec(model="dreamshaper", prompt="a lighthouse"), on_progress)
    store(result.png_bytes(), seed=result.seed)
"""

from minitoolai.engines.diffusion.cache import ByteBudgetLRU, CacheStats
from minitoolai.engines.diffusion.checkpoints import (
    DEFAULT_CHECKPOINTS,
    CheckpointConfig,
    resolve_checkpoints,
)
from minitoolai.engines.diffusion.engine import DiffusionEngine, GeneratedImage, ImageSpec
from minitoolai.engines.diffusion.errors import (
    CheckpointConfigError,
    UnknownImageModel,
    WeightsUnavailable,
)
from minitoolai.engines.diffusion.names import MODEL_NAMES, SCHEDULER_NAMES
from minitoolai.engines.diffusion.schedulers import SCHEDULERS, SamplerRecipe, build_scheduler
from minitoolai.engines.diffusion.weights import LocatedWeights, locate, pull, weights_present

__all__ = [
    "DEFAULT_CHECKPOINTS",
    "MODEL_NAMES",
    "SCHEDULERS",
    "SCHEDULER_NAMES",
    "ByteBudgetLRU",
    "CacheStats",
    "CheckpointConfig",
    "CheckpointConfigError",
    "DiffusionEngine",
    "GeneratedImage",
    "ImageSpec",
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
