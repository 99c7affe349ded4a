"""Text-to-image requests: the seed's job API and OpenAI's images API.

Names, ranges and defaults come from ``minitoolai.catalog``; a request gets the same defaults
whichever model it names. OpenAI's endpoint also takes OpenAI's image names (``dall-e-3``...),
answered by the image model the operator's ``[openai_image_models]`` maps each one to.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from minitoolai.catalog import (
    IMAGE_CFG_SCALE_RANGE,
    IMAGE_DEFAULT_CFG_SCALE,
    IMAGE_DEFAULT_FORMAT,
    IMAGE_DEFAULT_MODEL,
    IMAGE_DEFAULT_SCHEDULER,
    IMAGE_DEFAULT_SIZE,
    IMAGE_DEFAULT_STEPS,
    IMAGE_MAX_PER_REQUEST,
    IMAGE_MAX_PROMPT_CHARS,
    IMAGE_MODELS,
    IMAGE_SCHEDULERS,
    IMAGE_SEED_LIMIT,
    IMAGE_SIZE_RANGE,
    IMAGE_STEPS_RANGE,
    ImageFormat,
)
from minitoolai.settings import DEFAULT_OPENAI_IMAGE_MODELS

_MIN_SIZE, _MAX_SIZE = IMAGE_SIZE_RANGE


def _known_model(value: str) -> str:
    if value not in IMAGE_MODELS:
        raise ValueError(f"unknown model; use one of: {', '.join(IMAGE_MODELS)}")
    return value


class JobRequest(BaseModel):
    """``POST /api/texttoimage/`` in the seed's naming (camelCase)."""

    model_config = ConfigDict(extra="forbid")

    model: str
    prompt: str = Field(min_length=1, max_length=IMAGE_MAX_PROMPT_CHARS)
    negativePrompt: str | None = Field(default=None, max_length=IMAGE_MAX_PROMPT_CHARS)
    scheduler: str | None = None
    steps: int | None = Field(default=None, ge=IMAGE_STEPS_RANGE[0], le=IMAGE_STEPS_RANGE[1])
    cfgScale: float | None = Field(
        default=None, ge=IMAGE_CFG_SCALE_RANGE[0], le=IMAGE_CFG_SCALE_RANGE[1]
    )
    width: int | None = Field(default=None, ge=_MIN_SIZE, le=_MAX_SIZE)
    height: int | None = Field(default=None, ge=_MIN_SIZE, le=_MAX_SIZE)
    seed: int | None = Field(default=None, ge=0, lt=IMAGE_SEED_LIMIT)
    format: ImageFormat | None = None

    _model = field_validator("model")(_known_model)

    @field_validator("scheduler")
    @classmethod
    def _scheduler(cls, value: str | None) -> str | None:
        if value is not None and value not in IMAGE_SCHEDULERS:
            raise ValueError(f"unknown scheduler; use one of: {', '.join(IMAGE_SCHEDULERS)}")
        return value

    def job_params(self) -> dict[str, Any]:
        """What the worker needs, with the seed's defaults filled in."""
        return {
            "prompt": self.prompt,
            "negative_prompt": self.negativePrompt or "",
            "scheduler": self.scheduler or IMAGE_DEFAULT_SCHEDULER,
            "steps": self.steps or IMAGE_DEFAULT_STEPS,
            "cfg_scale": IMAGE_DEFAULT_CFG_SCALE if self.cfgScale is None else float(self.cfgScale),
            "width": self.width or IMAGE_DEFAULT_SIZE,
            "height": self.height or IMAGE_DEFAULT_SIZE,
            "seed": self.seed,
            "format": self.format or IMAGE_DEFAULT_FORMAT,
        }


class JobRef(BaseModel):
    """``POST /api/texttoimage/jobs/``: the seed sends the id as a string; accept a number too."""

    model_config = ConfigDict(extra="ignore")

    jobid: int | str
    signature: str = Field(min_length=1, max_length=200)

    @field_validator("jobid")
    @classmethod
    def _digits(cls, value: int | str) -> int:
        if isinstance(value, str):
            if not re.fullmatch(r"\d{1,20}", value.strip()):
                raise ValueError("must be a job id")
            value = int(value.strip())
        if value < 0 or value >= 2**63:
            raise ValueError("must be a job id")
        return value


_SIZE = re.compile(r"^(\d{3,4})x(\d{3,4})$")


class OpenAIImageRequest(BaseModel):
    """``POST /v1/images/generations``, on the same jobs."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=IMAGE_MAX_PROMPT_CHARS)
    #: one of the 15 models, or an OpenAI name (the route checks it: it knows the map)
    model: str = Field(default=IMAGE_DEFAULT_MODEL, max_length=200)
    n: int = Field(default=1, ge=1, le=IMAGE_MAX_PER_REQUEST)
    size: str = f"{IMAGE_DEFAULT_SIZE}x{IMAGE_DEFAULT_SIZE}"
    response_format: Literal["url", "b64_json"] = "url"
    user: str | None = None
    quality: str | None = None
    style: str | None = None

    @field_validator("size")
    @classmethod
    def _size(cls, value: str) -> str:
        if value == "auto":  # gpt-image-1's default: ours
            return f"{IMAGE_DEFAULT_SIZE}x{IMAGE_DEFAULT_SIZE}"
        match = _SIZE.match(value)
        if not match or not all(_MIN_SIZE <= int(v) <= _MAX_SIZE for v in match.groups()):
            raise ValueError(
                f"size is WIDTHxHEIGHT, each {_MIN_SIZE} to {_MAX_SIZE}, e.g. 1024x1024"
            )
        return value

    def job_request(
        self, openai_names: Mapping[str, str] = DEFAULT_OPENAI_IMAGE_MODELS
    ) -> JobRequest:
        """The seed's job for one image, an OpenAI name replaced by the model it maps to."""
        model = openai_names.get(self.model, self.model)
        width, height = (int(v) for v in self.size.split("x"))
        return JobRequest(model=model, prompt=self.prompt, width=width, height=height)
