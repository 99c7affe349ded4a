"""Text-to-image requests: the seed's job API and OpenAI's images API."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from minitoolai.engines.diffusion.names import MODEL_NAMES, SCHEDULER_NAMES


def _known_model(value: str) -> str:
    if value not in MODEL_NAMES:
        raise ValueError(f"unknown model; use one of: {', '.join(MODEL_NAMES)}")
    return value


class JobRequest(BaseModel):
    """``POST /api/texttoimage/`` in the seed's naming (camelCase)."""

    model_config = ConfigDict(extra="forbid")

    model: str
    prompt: str = Field(min_length=1, max_length=4000)
    negativePrompt: str | None = Field(default=None, max_length=4000)
    scheduler: str | None = None
    steps: int | None = Field(default=None, ge=1, le=8)
    cfgScale: float | None = Field(default=None, ge=1, le=7)
    width: int | None = Field(default=None, ge=256, le=1344)
    height: int | None = Field(default=None, ge=256, le=1344)
    seed: int | None = Field(default=None, ge=0, lt=2**32)
    format: Literal["png", "webp", "jpeg"] | None = None

    _model = field_validator("model")(_known_model)

    @field_validator("scheduler")
    @classmethod
    def _scheduler(cls, value: str | None) -> str | None:
        if value is not None and value not in SCHEDULER_NAMES:
            raise ValueError(f"unknown scheduler; use one of: {', '.join(SCHEDULER_NAMES)}")
        return value

    def job_params(self) -> dict[str, Any]:
        """What the worker needs, with the seed's defaults filled in."""
        return {
            "prompt": self.prompt,
            "negative_prompt": self.negativePrompt or "",
            "scheduler": self.scheduler or "DPM++ SDE",
            "steps": self.steps or 4,
            "cfg_scale": 2.0 if self.cfgScale is None else float(self.cfgScale),
            "width": self.width or 1024,
            "height": self.height or 1024,
            "seed": self.seed,
            "format": self.format or "png",
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

    prompt: str = Field(min_length=1, max_length=4000)
    model: str = "realvision"
    n: int = Field(default=1, ge=1, le=4)
    size: str = "1024x1024"
    response_format: Literal["url", "b64_json"] = "url"
    user: str | None = None
    quality: str | None = None
    style: str | None = None

    _model = field_validator("model")(_known_model)

    @field_validator("size")
    @classmethod
    def _size(cls, value: str) -> str:
        match = _SIZE.match(value)
        if not match or not all(256 <= int(v) <= 1344 for v in match.groups()):
            raise ValueError("size is WIDTHxHEIGHT, each 256 to 1344, e.g. 1024x1024")
        return value

    def job_request(self) -> JobRequest:
        width, height = (int(v) for v in self.size.split("x"))
        return JobRequest(model=self.model, prompt=self.prompt, width=width, height=height)
