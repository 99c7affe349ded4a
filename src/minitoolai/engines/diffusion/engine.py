"""The text-to-image engine a worker calls: one request in, one image out, synchronously.

``generate`` blocks for seconds (GPU) to minutes (CPU), so the worker runs it in a thread off the
event loop. The engine keeps loaded pipelines in a byte-bounded LRU cache and reports which model
names it holds, so the worker can prefer jobs it can start without loading weights.

One pipeline runs one image at a time (a lock per pipeline): the scheduler is swapped per request
on the shared pipeline object, and a GPU gains nothing from interleaving two denoising loops.
Different models can run in parallel threads.
"""

from __future__ import annotations

import gc
import logging
import os
import secrets
import threading
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from minitoolai.catalog import IMAGE_SEED_LIMIT
from minitoolai.engines.base import GeneratedImage, ImageEngine, ImageSpec, ProgressCallback
from minitoolai.engines.diffusion.cache import ByteBudgetLRU, CacheStats
from minitoolai.engines.diffusion.checkpoints import CheckpointConfig, resolve_checkpoints
from minitoolai.engines.diffusion.errors import UnknownImageModel
from minitoolai.engines.diffusion.schedulers import SCHEDULERS, build_scheduler
from minitoolai.engines.diffusion.sizing import crop_to, generation_size
from minitoolai.engines.diffusion.weights import (
    LocatedWeights,
    estimate_bytes,
    locate,
    pull,
    weights_present,
)

log = logging.getLogger(__name__)

#: Headroom kept free on a GPU for activations (SDXL at 1344 px with CFG needs a few GiB).
GPU_HEADROOM_BYTES: Final = 4 * 2**30


@dataclass(slots=True)
class _Loaded:
    pipe: Any
    #: the checkpoint's own scheduler config, kept because requests replace ``pipe.scheduler``
    scheduler_config: dict[str, Any]
    size_bytes: int
    lock: threading.Lock = field(default_factory=threading.Lock)


def _cache_key(cfg: CheckpointConfig, half_precision: bool) -> tuple[object, ...]:
    """What makes two loads identical: names sharing one checkpoint share one pipeline."""
    return (
        cfg.checkpoint,
        cfg.revision,
        cfg.variant,
        cfg.vae_for(half_precision=half_precision),
        cfg.base_config if cfg.single_file else None,
        cfg.architecture,
    )


def default_memory_budget(device: str) -> int:
    """Bytes of weights to keep loaded: the GPU less headroom, or half the machine's RAM."""
    if device.startswith("cuda"):
        import torch

        total = int(torch.cuda.get_device_properties(torch.device(device)).total_memory)
        return max(total - GPU_HEADROOM_BYTES, total // 2)
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return max(int(pages) // 2, 1)


class DiffusionEngine(ImageEngine):
    """Text-to-image over the configured checkpoints, with loaded pipelines cached by bytes.

    ``device`` defaults to CUDA when present (fp16) and the CPU otherwise (fp32: CPUs have no
    fast fp16 path). ``allow_download`` lets a missing model be pulled from the Hub at first use;
    off (the default) a missing model raises ``WeightsUnavailable`` at once.
    """

    def __init__(
        self,
        checkpoints: Mapping[str, CheckpointConfig] | None = None,
        *,
        device: str | None = None,
        memory_budget_bytes: int | None = None,
        allow_download: bool = False,
        cache_dir: Path | None = None,
    ) -> None:
        import torch

        # torchsde warns on every DPM++ SDE image that a float32 sigma lies 1e-7 outside the
        # Brownian tree's float64 interval (google-research/torchsde#152): harmless, and noise
        # in the worker's log.
        warnings.filterwarnings("ignore", message="Should have t", module=r"torchsde\.")
        self.checkpoints: Mapping[str, CheckpointConfig] = (
            checkpoints if checkpoints is not None else resolve_checkpoints()
        )
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.half_precision = self.device.startswith("cuda")
        self.dtype = torch.float16 if self.half_precision else torch.float32
        self.allow_download = allow_download
        self.cache_dir = cache_dir
        budget = memory_budget_bytes or default_memory_budget(self.device)
        self._cache: ByteBudgetLRU[tuple[object, ...], _Loaded] = ByteBudgetLRU(
            budget, on_evict=_log_eviction, after_evict=self._release_memory
        )

    # -- what the worker asks ------------------------------------------------------------

    def loaded_models(self) -> list[str]:
        """Model names whose weights are loaded now, so a worker can prefer their jobs."""
        held = set(self._cache.keys())
        return [
            name
            for name, cfg in self.checkpoints.items()
            if _cache_key(cfg, self.half_precision) in held
        ]

    def available_models(self) -> list[str]:
        """Enabled model names whose weights are on this machine (loadable without a network).

        Reads the disk and the Hugging Face cache only; a worker can advertise just these.
        """
        return [
            name
            for name, cfg in self.checkpoints.items()
            if cfg.enabled
            and weights_present(cfg, half_precision=self.half_precision, cache_dir=self.cache_dir)
        ]

    def cache_stats(self) -> CacheStats:
        return self._cache.stats()

    def preload(self, model: str) -> None:
        """Load ``model`` now (e.g. at worker start) so its first job starts warm."""
        self._pipeline(self._config(model))

    def pipeline(self, model: str) -> Any:
        """The loaded diffusers pipeline behind ``model`` (loading it if needed).

        For inspection and tests; calling it directly bypasses the per-pipeline lock.
        """
        return self._pipeline(self._config(model)).pipe

    def unload(self) -> None:
        """Drop every loaded pipeline (and free GPU memory they held)."""
        self._cache.clear()

    def generate(
        self, spec: ImageSpec, on_progress: ProgressCallback | None = None
    ) -> GeneratedImage:
        """Run one request to a finished image. Blocking; call it from a worker thread.

        ``on_progress`` gets a fraction in (0, 1] after every denoising call, ending at 1.0;
        an exception it raises aborts the generation and propagates (use that to cancel).
        The image is seeded entirely by ``spec.seed`` (or a drawn one, returned): the initial
        latents, every ancestral/SDE noise draw and the Brownian tree of "DPM++ SDE".
        """
        import torch

        cfg = self._config(spec.model)
        if spec.scheduler not in SCHEDULERS:
            raise UnknownImageModel(f"unknown scheduler {spec.scheduler!r}")
        seed = spec.seed if spec.seed is not None else secrets.randbelow(IMAGE_SEED_LIMIT)
        loaded = self._pipeline(cfg)
        gen_width, gen_height = generation_size(spec.width, spec.height)
        calls = 0

        def step_end(pipe: Any, step: int, _t: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            nonlocal calls
            calls += 1
            if on_progress is not None:
                on_progress(min(1.0, (step + 1) / pipe.num_timesteps))
            return tensors

        started = time.monotonic()
        with loaded.lock, torch.inference_mode():
            pipe = loaded.pipe
            pipe.scheduler = build_scheduler(
                spec.scheduler,
                loaded.scheduler_config,
                timestep_spacing=cfg.timestep_spacing,
                seed=seed,
            )
            # A CPU generator on every device: the same seed gives the same starting noise on
            # a GPU and a CPU worker, and CUDA's generator state never leaks between requests.
            generator = torch.Generator("cpu").manual_seed(seed)
            # diffusers turns classifier-free guidance off for guidance_scale <= 1: at cfg 1 the
            # negative prompt is unused and each step costs one UNet call instead of two.
            result = pipe(
                prompt=cfg.prompt_prefix + spec.prompt,
                negative_prompt=spec.negative_prompt or None,
                num_inference_steps=spec.steps,
                guidance_scale=spec.cfg_scale,
                width=gen_width,
                height=gen_height,
                generator=generator,
                callback_on_step_end=step_end,
                output_type="pil",
            )
        image = crop_to(result.images[0], spec.width, spec.height)
        return GeneratedImage(
            image=image,
            seed=seed,
            width=image.width,
            height=image.height,
            model=spec.model,
            scheduler=spec.scheduler,
            steps=spec.steps,
            cfg_scale=spec.cfg_scale,
            denoise_calls=calls,
            elapsed_s=time.monotonic() - started,
        )

    # -- loading ------------------------------------------------------------------------------

    def _config(self, model: str) -> CheckpointConfig:
        cfg = self.checkpoints.get(model)
        if cfg is None:
            raise UnknownImageModel(f"unknown image model {model!r}")
        if not cfg.enabled:
            raise UnknownImageModel(f"image model {model!r} is disabled on this server")
        return cfg

    def _pipeline(self, cfg: CheckpointConfig) -> _Loaded:
        loader = _PipelineLoader(self, cfg)
        return self._cache.get_or_load(
            _cache_key(cfg, self.half_precision), loader.load, estimate=loader.estimate
        )

    def _release_memory(self) -> None:
        """Return evicted weights' memory now, before the next load claims it.

        Pipelines hold reference cycles (components point back at the pipeline config), so
        dropping the last reference is not enough; on CUDA the caching allocator also keeps freed
        blocks until asked.
        """
        gc.collect()
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()


def _log_eviction(key: tuple[object, ...], loaded: _Loaded) -> None:
    log.info("unloaded image model weights %s (%.2f GB)", key[0], loaded.size_bytes / 1e9)


class _PipelineLoader:
    """One cache miss: find the files (and their size), then build the pipeline.

    Split in two so the cache can make room between the steps; neither runs on a cache hit, so a
    hit never touches the disk or, with ``allow_download``, the network.
    """

    def __init__(self, engine: DiffusionEngine, cfg: CheckpointConfig) -> None:
        self.engine = engine
        self.cfg = cfg
        self.located: LocatedWeights | None = None

    def estimate(self) -> int:
        engine, half = self.engine, self.engine.half_precision
        if engine.allow_download:
            self.located = pull(
                self.cfg, progress=False, half_precision=half, cache_dir=engine.cache_dir
            )
        else:
            self.located = locate(self.cfg, half_precision=half, cache_dir=engine.cache_dir)
        return estimate_bytes(self.located, 2 if half else 4)

    def load(self) -> tuple[_Loaded, int]:
        from minitoolai.engines.diffusion.loading import load_pipeline, module_bytes

        engine, cfg = self.engine, self.cfg
        located = self.located or locate(
            cfg, half_precision=engine.half_precision, cache_dir=engine.cache_dir
        )
        started = time.monotonic()
        pipe = load_pipeline(cfg, located, device=engine.device, dtype=engine.dtype)
        size = module_bytes(pipe)
        log.info(
            "loaded image model %s (%s) on %s: %.2f GB in %.1fs",
            cfg.name,
            cfg.checkpoint,
            engine.device,
            size / 1e9,
            time.monotonic() - started,
        )
        return _Loaded(pipe, dict(pipe.scheduler.config), size), size
