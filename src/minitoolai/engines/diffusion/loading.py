"""Building a diffusers pipeline from files ``weights.locate`` found. The only torch-heavy load.

Every call passes ``local_files_only=True``: by the time we get here the files are known to be
on disk, and a stray Hub request (a config lookup, a safety checker download) must fail at once
rather than hang a worker.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from minitoolai.catalog import ImageArchitecture
from minitoolai.engines.diffusion.checkpoints import CheckpointConfig
from minitoolai.engines.diffusion.weights import LocatedWeights

log = logging.getLogger(__name__)


def folder_architecture(folder: Path) -> ImageArchitecture | None:
    """What a diffusers folder says it is (its ``model_index.json``), if SD 1.5 or SDXL."""
    try:
        class_name = json.loads((folder / "model_index.json").read_text())["_class_name"]
    except (OSError, ValueError, KeyError):
        return None
    if class_name == "StableDiffusionXLPipeline":
        return "sdxl"
    if class_name == "StableDiffusionPipeline":
        return "sd15"
    return None


def load_pipeline(
    cfg: CheckpointConfig, located: LocatedWeights, *, device: str, dtype: Any
) -> Any:
    """The text-to-image pipeline for ``cfg``, on ``device`` in ``dtype``, ready to call.

    A diffusers folder says its own architecture, which wins over ``cfg.architecture`` (an
    operator who swaps the folder need not also edit the setting); a single file cannot say, so
    ``cfg.architecture`` picks the pipeline class and ``located.config_dir`` its components.
    SD 1.5's safety checker is not loaded: SDXL has none, and one policy for every model belongs
    in the gateway, not in whichever checkpoint happens to ship a classifier.
    """
    from diffusers import AutoencoderKL, StableDiffusionPipeline, StableDiffusionXLPipeline

    arch = cfg.architecture
    if located.kind == "folder":
        found = folder_architecture(located.path)
        if found is not None and found != arch:
            log.warning(
                "image model %s: folder %s holds an %s pipeline, not %s; loading it as %s",
                cfg.name,
                located.path,
                found,
                arch,
                found,
            )
            arch = found
    cls: Any = StableDiffusionXLPipeline if arch == "sdxl" else StableDiffusionPipeline
    kwargs: dict[str, Any] = {"dtype": dtype, "local_files_only": True}
    if arch == "sd15":
        kwargs.update(safety_checker=None, requires_safety_checker=False)
    if located.vae_dir is not None:
        kwargs["vae"] = AutoencoderKL.from_pretrained(  # type: ignore[no-untyped-call]
            located.vae_dir, dtype=dtype, local_files_only=True
        )
    if located.kind == "folder":
        if located.variant:
            kwargs["variant"] = located.variant
        pipe = cls.from_pretrained(located.path, **kwargs)
    else:
        pipe = cls.from_single_file(str(located.path), config=str(located.config_dir), **kwargs)
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def module_bytes(pipe: Any) -> int:
    """Bytes held by the pipeline's weights and buffers (shared modules counted once)."""
    import torch

    seen: set[int] = set()
    total = 0
    for component in pipe.components.values():
        if not isinstance(component, torch.nn.Module):
            continue
        for tensor in (*component.parameters(), *component.buffers()):
            if id(tensor) not in seen:
                seen.add(id(tensor))
                total += tensor.numel() * tensor.element_size()
    return total
