"""Chat answered in-process by llama.cpp (GGUF models), with zero configuration by default.

Importing this package does not import ``llama_cpp``; constructing an engine does.
"""

from minitoolai.engines.llamacpp.config import (
    DEFAULT_MODEL_NAME,
    LocalModelConfig,
    default_model_config,
    packaged_model_path,
)
from minitoolai.engines.llamacpp.engine import LlamaCppEngine
from minitoolai.engines.llamacpp.loader import load_llama

__all__ = [
    "DEFAULT_MODEL_NAME",
    "LlamaCppEngine",
    "LocalModelConfig",
    "default_model_config",
    "load_llama",
    "packaged_model_path",
]
