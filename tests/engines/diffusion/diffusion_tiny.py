"""Builders for tiny random-weight SD 1.5 and SDXL pipelines, and a fake Hugging Face cache.

Shared by this folder's conftest (session fixtures) and its tests; named uniquely because test
folders here are not packages.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from minitoolai.catalog import IMAGE_DEFAULT_CFG_SCALE, IMAGE_DEFAULT_SCHEDULER, IMAGE_DEFAULT_STEPS
from minitoolai.engines.base import ImageSpec
from minitoolai.engines.diffusion import CheckpointConfig, resolve_checkpoints
from minitoolai.settings import FileConfig

SD15_MODEL = "mixrealistic"
SDXL_MODEL = "dreamshaper"


def _tokenizer(folder: Path) -> Any:
    from transformers import CLIPTokenizer

    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab: dict[str, int] = {}
    for token in [*letters, *(f"{c}</w>" for c in letters), "<|startoftext|>", "<|endoftext|>"]:
        vocab[token] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(
        str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77
    )


def _text_config(vocab_size: int) -> Any:
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        max_position_embeddings=77,
        projection_dim=32,
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1,
    )


def _vae() -> Any:
    from diffusers import AutoencoderKL

    return AutoencoderKL(  # type: ignore[no-untyped-call]
        block_out_channels=(8, 8, 8, 8),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        norm_num_groups=8,
        layers_per_block=1,
        sample_size=64,
    )


def _scheduler() -> Any:
    """SD's training schedule, in the form SD checkpoints ship it (leading spacing)."""
    from diffusers import EulerDiscreteScheduler

    return EulerDiscreteScheduler(  # type: ignore[no-untyped-call]
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        timestep_spacing="leading",
        steps_offset=1,
    )


def build_tiny_sd15(folder: Path) -> Path:
    import torch
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    torch.manual_seed(0)
    tokenizer = _tokenizer(folder)
    pipe = StableDiffusionPipeline(  # type: ignore[no-untyped-call]
        unet=UNet2DConditionModel(  # type: ignore[no-untyped-call]
            block_out_channels=(32, 64),
            layers_per_block=1,
            sample_size=8,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=32,
            norm_num_groups=8,
            attention_head_dim=(2, 4),
        ),
        vae=_vae(),
        text_encoder=CLIPTextModel(_text_config(len(tokenizer))),
        tokenizer=tokenizer,
        scheduler=_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    out = folder / "tiny-sd15"
    pipe.save_pretrained(out)  # type: ignore[attr-defined]
    return out


def build_tiny_sdxl(folder: Path) -> Path:
    import torch
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(0)
    tokenizer = _tokenizer(folder)
    text_config = _text_config(len(tokenizer))
    pipe = StableDiffusionXLPipeline(  # type: ignore[no-untyped-call]
        unet=UNet2DConditionModel(  # type: ignore[no-untyped-call]
            block_out_channels=(32, 64),
            layers_per_block=1,
            sample_size=8,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            # SDXL wiring: both encoders' hidden states concatenated (32 + 32), pooled text
            # embedding + size/crop ids as extra conditioning (6 ids x 8 + 32 = 80).
            cross_attention_dim=64,
            norm_num_groups=8,
            attention_head_dim=(2, 4),
            use_linear_projection=True,
            addition_embed_type="text_time",
            addition_time_embed_dim=8,
            transformer_layers_per_block=(1, 2),
            projection_class_embeddings_input_dim=80,
        ),
        vae=_vae(),
        text_encoder=CLIPTextModel(text_config),
        text_encoder_2=CLIPTextModelWithProjection(text_config),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        scheduler=_scheduler(),
    )
    out = folder / "tiny-sdxl"
    pipe.save_pretrained(out)  # type: ignore[attr-defined]
    return out


def spec(model: str, **fields: Any) -> ImageSpec:
    """A 64 px request with the API's defaults for what ``fields`` leaves out."""
    base: dict[str, Any] = {
        "prompt": "x",
        "scheduler": IMAGE_DEFAULT_SCHEDULER,
        "steps": IMAGE_DEFAULT_STEPS,
        "cfg_scale": IMAGE_DEFAULT_CFG_SCALE,
        "width": 64,
        "height": 64,
    }
    return ImageSpec(model=model, **{**base, **fields})


def resolve(tables: dict[str, dict[str, object]]) -> dict[str, CheckpointConfig]:
    """What a config file with these ``[image_models.*]`` tables resolves to."""
    return resolve_checkpoints(FileConfig.model_validate({"image_models": tables}).image_models)


def tiny_checkpoints(
    sd15: Path, sdxl: Path, **extra: dict[str, object]
) -> dict[str, CheckpointConfig]:
    """The shipped defaults with one SD 1.5 and one SDXL name pointed at the tiny folders."""
    overrides: dict[str, dict[str, object]] = {
        SD15_MODEL: {"checkpoint": str(sd15), "architecture": "sd15"},
        SDXL_MODEL: {"checkpoint": str(sdxl), "architecture": "sdxl"},
    }
    overrides.update(extra)
    return resolve(overrides)


def fake_hub_cache(cache: Path, repo_id: str, files_from: Path | None = None) -> Path:
    """A Hugging Face cache entry for ``repo_id`` as ``hf download`` leaves it (refs + snapshot).

    Real caches store blobs and symlink them into the snapshot; lookups only read the ref and
    the snapshot folder, so plain copies stand in for the symlinks.
    """
    commit = "0" * 40
    repo_dir = cache / f"models--{repo_id.replace('/', '--')}"
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(commit)
    snapshot = repo_dir / "snapshots" / commit
    if files_from is not None:
        shutil.copytree(files_from, snapshot)
    else:
        snapshot.mkdir(parents=True)
    return snapshot
