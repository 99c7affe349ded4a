"""Configuration: environment variables (``MINITOOLAI_*``) plus an optional TOML file.

The environment holds what differs per process or secret (database URL, data dir, keys); the
TOML file named by ``MINITOOLAI_CONFIG`` holds what describes the platform (prices, upstream
providers, deployments, local and image models). Both are validated at start, so a typo fails
fast with a message instead of surfacing as a 500 at the first request.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from minitoolai.money import usd_to_nano


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PriceConfig(_Strict):
    """Operator prices in USD, as decimal strings (``"0.15"``) or numbers; stored exactly."""

    input: str | None = None  # per 1M input tokens
    output: str | None = None  # per 1M output tokens
    image: str | None = None  # per image
    characters: str | None = None  # per 1M input characters (speech)

    @field_validator("input", "output", "image", "characters", mode="before")
    @classmethod
    def _exact(cls, value: Any) -> str | None:
        if value is None:
            return None
        text = str(value)
        if usd_to_nano(text) < 0:
            raise ValueError("a price cannot be negative")
        return text


class ProviderConfig(_Strict):
    """An OpenAI-compatible HTTP server: OpenAI, Azure-style, vLLM, llama.cpp, Ollama..."""

    base_url: str
    api_key: SecretStr | None = None
    api_key_env: str | None = None  # read the key from this variable instead of the file
    timeout_s: float = 600.0
    connect_timeout_s: float = 5.0
    # the longest silence allowed from a streaming upstream: before its first byte and between
    # any two bytes after it (for a non-streamed answer: between bytes once it has begun)
    read_timeout_s: float = Field(default=60.0, gt=0)
    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, str] = Field(default_factory=dict)  # e.g. Azure's api-version

    def resolved_key(self) -> str | None:
        if self.api_key is not None:
            return self.api_key.get_secret_value()
        if self.api_key_env:
            return os.environ.get(self.api_key_env)
        return None


class DeploymentConfig(_Strict):
    """One way to serve a public model name: a provider (or local engine) and its model id."""

    model: str  # the public name clients ask for
    provider: str  # a key of [providers], or "local"
    upstream_model: str | None = None  # defaults to the public name
    weight: int = Field(default=1, ge=0)
    priority: int = 0  # lower is tried first; weight picks within a priority


class LocalModelConfig(_Strict):
    """An in-process GGUF model: a local path, or a Hugging Face repo + file."""

    path: str | None = None
    hf_repo: str | None = None
    hf_file: str | None = None
    n_ctx: int = 4096
    n_threads: int | None = None
    queue_size: int = 4
    chat_template: str | None = None
    n_batch: int = 512
    reuse_prefix: bool = False


class FileConfig(_Strict):
    prices: dict[str, PriceConfig] = Field(default_factory=dict)
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    deployments: list[DeploymentConfig] = Field(default_factory=list)
    local_models: dict[str, LocalModelConfig] = Field(default_factory=dict)
    image_models: dict[str, dict[str, Any]] = Field(default_factory=dict)
    voices: dict[str, str] = Field(default_factory=dict)


class Settings(BaseSettings):
    """Process settings. Every field is ``MINITOOLAI_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="MINITOOLAI_", extra="ignore")

    data_dir: Path = Path("./data")
    database_url: str | None = None
    config: Path | None = None
    admin_key: SecretStr | None = None
    redis_url: str | None = None
    public_base_url: str | None = None

    secret_key: SecretStr | None = None  # signs job ids and image URLs; generated if unset

    image_engine: Literal["diffusers", "test-pattern"] = "diffusers"
    image_workers: int = Field(default=1, ge=0)  # in-process workers that `serve` runs
    image_url_ttl_s: int = Field(default=86_400, ge=60)
    image_retention_s: int = Field(default=7 * 86_400, ge=60)
    job_lease_s: float = Field(default=60.0, gt=0)
    job_max_attempts: int = Field(default=3, ge=1)
    job_wait_s: float = Field(default=300.0, gt=0)  # how long /v1/images/generations waits
    image_allow_download: bool = False  # let a worker pull missing weights at first use
    test_pattern_step_s: float = Field(default=0.0, ge=0)  # the diagnostic engine's step time

    image_fetch_allow: list[str] = Field(default_factory=list)  # extra CIDRs, e.g. ["10.1.0.0/16"]
    image_fetch_max_bytes: int = Field(default=20 * 1024 * 1024, gt=0)
    image_fetch_timeout_s: float = Field(default=10.0, gt=0)
    image_fetch_concurrency: int = Field(default=4, ge=1)  # image loads in flight, per process
    image_max_parts: int = Field(default=10, ge=1)  # images in one chat request

    hold_timeout_s: int = Field(default=900, ge=1)
    sweep_interval_s: float = Field(default=30.0, gt=0)
    key_cache_ttl_s: float = Field(default=5.0, ge=0)
    upstream_cooldown_s: float = Field(default=30.0, ge=0)
    local_default: bool = True  # route unserved gpt-* names to the packaged local model
    local_speech: bool = True  # serve tts-1 / tts-1-hd with the local speech engine
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"

    # Zero-config upstream convention, read without our prefix (as the openai SDK does).
    openai_api_key: SecretStr | None = Field(default=None, validation_alias="OPENAI_API_KEY")
    openai_base_url: str = Field(
        default="https://api.openai.com/v1", validation_alias="OPENAI_BASE_URL"
    )

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'minitoolai.db').resolve()}"

    def load_file(self) -> FileConfig:
        if self.config is None:
            return FileConfig()
        try:
            raw = tomllib.loads(self.config.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ValueError(f"config file {self.config} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"config file {self.config}: {exc}") from None
        return FileConfig.model_validate(raw)
