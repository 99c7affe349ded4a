"""Chat answered in-process by llama.cpp (GGUF models), with zero configuration by default.

Importing this package does not import ``llama_cpp``; constructing an engine does. An engine is
built from the operator's ``LocalModelConfig`` (re-exported here from ``minitoolai.settings``).
"""

from minitoolai.engines.llamacpp.config import (
    DEFAULT_MODEL_NAME,
    default_model_config,
    packaged_model_path,
)
from minitoolai.engines.llamacpp.engine import LlamaCppEngine
from minitoolai.engines.llamacpp.loader import load_llama
from minitoolai.settings import LocalModelConfig

__all__ = [
    "DEFAULT_MODEL_NAME",
    "LlamaCppEngine",
    "LocalModelConfig",
    "default_model_config",
    "load_llama",
    "packaged_model_path",
]
