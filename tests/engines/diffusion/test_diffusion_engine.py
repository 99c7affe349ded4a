"""The engine end to end on tiny random-weight SD 1.5 and SDXL pipelines, on the CPU."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from minitoolai.catalog import IMAGE_SCHEDULERS
from minitoolai.engines.base import ImageSpec
from minitoolai.engines.diffusion import (
    SCHEDULERS,
    DiffusionEngine,
    UnknownImageModel,
    build_scheduler,
)
from minitoolai.engines.diffusion.loading import module_bytes
from minitoolai.images.worker import encode

from .diffusion_tiny import SD15_MODEL, SDXL_MODEL, tiny_checkpoints
from .diffusion_tiny import spec as tiny_spec


def spec(model: str = SD15_MODEL, **fields: Any) -> ImageSpec:
    return tiny_spec(model, **{"prompt": "a red cube", "steps": 2, **fields})


def pixels(result: Any) -> np.ndarray[Any, Any]:
    return np.asarray(result.image)


def expected_calls(scheduler: str, steps: int) -> int:
    """diffusers' second-order schedulers evaluate the UNet 2N-1 times for N steps."""
    return 2 * steps - 1 if SCHEDULERS[scheduler].unet_calls_per_step == 2 else steps


@pytest.mark.parametrize("steps", [1, 5, 8])
@pytest.mark.parametrize("scheduler", IMAGE_SCHEDULERS)
def test_every_scheduler_makes_an_image_sd15(
    tiny_engine: DiffusionEngine, scheduler: str, steps: int
) -> None:
    """The API's extremes (1, 8) and 5: 3n-1 step counts once gave order-3 singlestep NaNs."""
    result = tiny_engine.generate(spec(scheduler=scheduler, steps=steps, seed=3))
    assert result.image.size == (64, 64) and result.image.mode == "RGB"
    assert result.denoise_calls == expected_calls(scheduler, steps)
    assert pixels(result).std() > 0  # a decoded picture, not a blank or NaN-black frame
    assert result.scheduler == scheduler and result.seed == 3


@pytest.mark.parametrize(
    "scheduler", ["Euler a", "DPM++ SDE Karras", "DPM++ 2M SDE", "DPM2 a Karras", "DPM fast"]
)
def test_schedulers_through_sdxl(tiny_engine: DiffusionEngine, scheduler: str) -> None:
    asked = spec(SDXL_MODEL, scheduler=scheduler, width=64, height=80, seed=5)
    result = tiny_engine.generate(asked)
    assert result.image.size == (64, 80)  # width x height, not swapped
    assert result.denoise_calls == expected_calls(scheduler, 2)
    assert pixels(result).std() > 0


def test_a_size_off_the_8px_grid_comes_back_exact(tiny_engine: DiffusionEngine) -> None:
    result = tiny_engine.generate(spec(width=70, height=61, seed=1, steps=1, scheduler="Euler"))
    assert result.image.size == (70, 61)
    assert (result.width, result.height) == (70, 61)


def _disturb_global_rngs() -> None:
    import torch

    torch.manual_seed(987)
    torch.randn(16)
    np.random.seed(5)
    random.seed(5)


@pytest.mark.parametrize(
    ("model", "scheduler"),
    [
        (SD15_MODEL, "DPM++ SDE"),
        (SD15_MODEL, "Euler a"),
        (SD15_MODEL, "DPM++ 2M SDE Karras"),
        (SDXL_MODEL, "DPM++ SDE Karras"),
    ],
)
def test_same_seed_same_pixels(tiny_engine: DiffusionEngine, model: str, scheduler: str) -> None:
    first = tiny_engine.generate(spec(model, scheduler=scheduler, seed=1234, steps=3))
    _disturb_global_rngs()
    again = tiny_engine.generate(spec(model, scheduler=scheduler, seed=1234, steps=3))
    other = tiny_engine.generate(spec(model, scheduler=scheduler, seed=1235, steps=3))
    assert np.array_equal(pixels(first), pixels(again))
    assert not np.array_equal(pixels(first), pixels(other))


def test_the_brownian_tree_needs_its_own_seed(tiny_engine: DiffusionEngine) -> None:
    """Why the engine seeds DPMSolverSDEScheduler: the generator alone does not fix its noise."""
    import torch

    pipe = tiny_engine.pipeline(SD15_MODEL)
    config = dict(pipe.scheduler.config)
    images = []
    for _ in range(2):
        pipe.scheduler = build_scheduler("DPM++ SDE", config, seed=None)  # unseeded tree
        out = pipe(
            "a red cube",
            num_inference_steps=3,
            width=64,
            height=64,
            generator=torch.Generator("cpu").manual_seed(7),
            output_type="np",
        )
        images.append(out.images[0])
    assert not np.array_equal(images[0], images[1])


def test_no_seed_draws_one_and_returns_it(tiny_engine: DiffusionEngine) -> None:
    first = tiny_engine.generate(spec(scheduler="Euler a", seed=None))
    assert 0 <= first.seed < 2**32
    again = tiny_engine.generate(spec(scheduler="Euler a", seed=first.seed))
    assert np.array_equal(pixels(first), pixels(again))


def test_cfg_1_runs_without_guidance(tiny_engine: DiffusionEngine) -> None:
    pipe = tiny_engine.pipeline(SD15_MODEL)
    batches: list[int] = []
    hook = pipe.unet.register_forward_pre_hook(
        lambda _m, args, kwargs: batches.append((args[0] if args else kwargs["sample"]).shape[0]),
        with_kwargs=True,
    )
    try:
        tiny_engine.generate(spec(scheduler="Euler", cfg_scale=1.0, negative_prompt="blur", seed=2))
        unguided = list(batches)
        batches.clear()
        tiny_engine.generate(spec(scheduler="Euler", cfg_scale=2.0, negative_prompt="blur", seed=2))
    finally:
        hook.remove()
    assert unguided == [1, 1]  # one UNet pass per step, prompt only
    assert batches == [2, 2]  # prompt + negative prompt, batched


def test_progress_is_reported_per_denoising_call(tiny_engine: DiffusionEngine) -> None:
    seen: list[float] = []
    result = tiny_engine.generate(spec(scheduler="Euler", steps=4, seed=1), seen.append)
    assert seen == [0.25, 0.5, 0.75, 1.0]
    seen.clear()
    result = tiny_engine.generate(spec(scheduler="DPM++ SDE", steps=3, seed=1), seen.append)
    assert len(seen) == result.denoise_calls == 5
    assert all(0 < v <= 1 for v in seen) and seen == sorted(set(seen)) and seen[-1] == 1.0


def test_a_raising_progress_callback_cancels_and_frees_the_pipeline(
    tiny_engine: DiffusionEngine,
) -> None:
    class Cancelled(Exception):
        pass

    def cancel(fraction: float) -> None:
        if fraction >= 0.5:
            raise Cancelled

    with pytest.raises(Cancelled):
        tiny_engine.generate(spec(scheduler="Euler", steps=4, seed=1), cancel)
    assert tiny_engine.generate(spec(scheduler="Euler", steps=1, seed=1)).image.size == (64, 64)


def test_png_bytes(tiny_engine: DiffusionEngine) -> None:
    result = tiny_engine.generate(spec(steps=1, scheduler="Euler", seed=9))
    assert encode(result, "png").startswith(b"\x89PNG\r\n\x1a\n")


def test_unknown_or_disabled_models_are_rejected(tiny_sd15: Path, tiny_sdxl: Path) -> None:
    checkpoints = tiny_checkpoints(tiny_sd15, tiny_sdxl, amigo={"enabled": False})
    eng = DiffusionEngine(checkpoints, device="cpu")
    with pytest.raises(UnknownImageModel, match="unknown image model"):
        eng.generate(spec("midjourney"))
    with pytest.raises(UnknownImageModel, match="disabled"):
        eng.generate(spec("amigo"))
    with pytest.raises(UnknownImageModel, match="scheduler"):
        eng.generate(spec(scheduler="DPM++ 3M SDE"))
    assert eng.cache_stats().loads == 0


# --------------------------------------------------------------------------- the pipeline cache


def test_cached_weights_are_not_reloaded(tiny_sd15: Path, tiny_sdxl: Path) -> None:
    # realvision shares mixrealistic's folder: one load serves both names
    checkpoints = tiny_checkpoints(
        tiny_sd15, tiny_sdxl, realvision={"checkpoint": str(tiny_sd15), "architecture": "sd15"}
    )
    eng = DiffusionEngine(checkpoints, device="cpu")
    assert eng.loaded_models() == []
    eng.generate(spec(steps=1, scheduler="Euler", seed=1))
    eng.generate(spec(steps=1, scheduler="DPM++ SDE", seed=2))  # new scheduler, same weights
    eng.generate(spec("realvision", steps=1, scheduler="Euler", seed=3))
    stats = eng.cache_stats()
    assert stats.loads == 1 and stats.hits == 2
    assert sorted(eng.loaded_models()) == sorted([SD15_MODEL, "realvision"])


def test_eviction_follows_the_byte_budget(
    tiny_engine: DiffusionEngine, tiny_sd15: Path, tiny_sdxl: Path
) -> None:
    sd15_bytes = module_bytes(tiny_engine.pipeline(SD15_MODEL))
    sdxl_bytes = module_bytes(tiny_engine.pipeline(SDXL_MODEL))
    checkpoints = tiny_checkpoints(tiny_sd15, tiny_sdxl)

    roomy = DiffusionEngine(
        checkpoints, device="cpu", memory_budget_bytes=2 * (sd15_bytes + sdxl_bytes)
    )
    roomy.preload(SD15_MODEL)
    roomy.preload(SDXL_MODEL)
    assert sorted(roomy.loaded_models()) == sorted([SD15_MODEL, SDXL_MODEL])
    assert roomy.cache_stats().used_bytes == sd15_bytes + sdxl_bytes

    tight = DiffusionEngine(
        checkpoints, device="cpu", memory_budget_bytes=max(sd15_bytes, sdxl_bytes) + 1024
    )
    tight.preload(SD15_MODEL)
    tight.preload(SDXL_MODEL)  # both do not fit: the least recently used one goes
    assert tight.loaded_models() == [SDXL_MODEL]
    tight.generate(spec(steps=1, scheduler="Euler", seed=1))  # needs SD 1.5 back
    assert tight.loaded_models() == [SD15_MODEL]
    stats = tight.cache_stats()
    assert (stats.loads, stats.evictions) == (3, 2)
