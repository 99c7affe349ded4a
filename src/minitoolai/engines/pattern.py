"""A diagnostic image engine: draws a seeded pattern instead of running a model.

For operators checking a deployment end to end (queue, workers, storage, billing) before any
weights are in place, and for measuring the queue's own overhead in the bench. Select it with
``MINITOOLAI_IMAGE_ENGINE=test-pattern``. ``step_s`` makes each step take time, like a model.
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Callable

from minitoolai.catalog import IMAGE_SEED_LIMIT
from minitoolai.engines.base import GeneratedImage, ImageSpec


class PatternEngine:
    def __init__(self, step_s: float = 0.0) -> None:
        self.step_s = step_s

    def loaded_models(self) -> list[str]:
        return []

    def generate(
        self, spec: ImageSpec, on_progress: Callable[[float], None] | None = None
    ) -> GeneratedImage:
        from PIL import Image, ImageDraw

        start = time.perf_counter()
        seed = spec.seed if spec.seed is not None else secrets.randbelow(IMAGE_SEED_LIMIT)
        rng = random.Random(seed)
        image = Image.new(
            "RGB", (spec.width, spec.height), tuple(rng.randrange(256) for _ in "rgb")
        )
        draw = ImageDraw.Draw(image)
        for step in range(spec.steps):
            box = sorted(rng.randrange(spec.width) for _ in "xy") + sorted(
                rng.randrange(spec.height) for _ in "xy"
            )
            draw.rectangle(
                (box[0], box[2], box[1], box[3]), fill=tuple(rng.randrange(256) for _ in "rgb")
            )
            if self.step_s:
                time.sleep(self.step_s)
            if on_progress is not None:
                on_progress((step + 1) / spec.steps)
        return GeneratedImage(
            image=image,
            seed=seed,
            width=spec.width,
            height=spec.height,
            model=spec.model,
            scheduler=spec.scheduler,
            steps=spec.steps,
            cfg_scale=spec.cfg_scale,
            denoise_calls=spec.steps,
            elapsed_s=time.perf_counter() - start,
        )
