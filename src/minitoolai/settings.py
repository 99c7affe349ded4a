"""Configuration: environment variables (``MINITOOLAI_*``) plus an optional TOML file.

The environment holds what differs per process or secret (database URL, data dir, keys); the
TOML file named by ``MINITOOLAI_CONFIG`` holds what describes the platform (prices, upstream
providers, deployments, local and image models). Both are validated at start, so a typo fails
fast with a message instead of surfacing as a 500 at the first request.
"""

from __future__ import annotations

import logging
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from minitoolai.catalog import (
    IMAGE_CFG_SCALE_RANGE,
    IMAGE_DEFAULT_CFG_SCALE,
    IMAGE_DEFAULT_MODEL,
    IMAGE_DEFAULT_SCHEDULER,
    IMAGE_DEFAULT_STEPS,
    IMAGE_MODELS,
    IMAGE_SCHEDULERS,
    IMAGE_STEPS_RANGE,
    ImageArchitecture,
    TimestepSpacing,
)
from minitoolai.money import usd_to_nano

log = logging.getLogger("minitoolai.settings")


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


#: what HTTP allows in a header's name (RFC 9110's token)
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


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

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.fullmatch(r"https?://[^/\s?#]+(/\S*)?", value):
            raise ValueError("base_url must be an http:// or https:// URL with a host")
        return value

    @field_validator("headers")
    @classmethod
    def _one_line_each(cls, value: dict[str, str]) -> dict[str, str]:
        # a line break in a header would write another header, or another request
        for name, text in value.items():
            if not _HEADER_NAME.fullmatch(name) or any(c in text for c in "\r\n\0"):
                raise ValueError(f"header {name!r}: a name of token characters, a one-line value")
        return value

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
    # the upstream also speaks OpenAI's Responses API: /v1/responses is passed through to it
    responses: bool = False


class LocalModelConfig(_Strict):
    """An in-process GGUF model, as a ``[local_models.<name>]`` table describes it.

    Exactly one source is used: ``path`` (a local ``.gguf`` file) wins; otherwise ``hf_repo`` +
    ``hf_file`` (a file name or glob) name a Hugging Face download, looked up in the local
    Hugging Face cache first so that a pre-seeded machine needs no network.

    ``queue_size`` is how many requests may *wait* while one generates; one more than that is
    refused with ``EngineBusy`` (429) instead of queueing without bound, because a CPU model
    serves one request at a time and a long queue only turns into client timeouts.
    """

    #: the public name, as clients write it in ``model``: the table's key in the file
    name: str
    path: str | None = None
    hf_repo: str | None = None
    hf_file: str | None = None
    n_ctx: int = Field(default=4096, ge=16)
    #: ``None``: half the logical CPUs (about the physical cores, llama.cpp's own choice)
    n_threads: int | None = None
    queue_size: int = Field(default=4, ge=0)
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

    @model_validator(mode="after")
    def _one_source(self) -> LocalModelConfig:
        if self.path is None and self.hf_repo is None:
            raise ValueError(f"model {self.name!r}: set either path or hf_repo (+ hf_file)")
        if self.path is None and not self.hf_file:
            raise ValueError(f"model {self.name!r}: hf_repo needs hf_file (a file name or glob)")
        return self

    def threads(self) -> int:
        """The thread count llama.cpp gets."""
        if self.n_threads is not None:
            return max(1, self.n_threads)
        return max(1, (os.cpu_count() or 2) // 2)


#: ``[image_models.*]`` keys that older files set and that no longer change anything
UNAPPLIED_IMAGE_KEYS: Final = ("scheduler", "steps", "cfg_scale")


class ImageModelConfig(_Strict):
    """An ``[image_models.<name>]`` table: the operator's changes to what serves one image name.

    Every key is optional; a key left out keeps the shipped default (``minitoolai models list``
    shows the result). The engine validates the merged whole (e.g. the ``checkpoint`` form).
    """

    #: a Hugging Face repo id, a ``.safetensors`` file in one, a local folder or a local file
    checkpoint: str | None = None
    #: needed for a single ``.safetensors`` file
    architecture: ImageArchitecture | None = None
    #: a Hub revision (branch, tag or commit) for the hub forms
    revision: str | None = None
    #: diffusers weight variant, e.g. "fp16" for ``*.fp16.safetensors`` files
    variant: str | None = None
    #: a VAE (repo id or local diffusers folder) used in place of the checkpoint's own, always
    vae: str | None = None
    #: a VAE used in place of the checkpoint's own only in half precision (CUDA)
    fp16_vae: str | None = None
    #: component configs + tokenizers for a single-file checkpoint (repo id or local folder)
    config_repo: str | None = None
    #: spacing for the non-Karras samplers; "trailing" for Lightning checkpoints
    timestep_spacing: TimestepSpacing | None = None
    #: prepended to every prompt (e.g. Pony's score tags)
    prompt_prefix: str | None = None
    enabled: bool | None = None
    #: marks weights that only stand in for the name
    stand_in: bool | None = None
    licence: str | None = None
    # Accepted (and checked) so that older files still load, but never applied: a request
    # without these fields gets the seed's defaults whatever the model (see the catalog).
    scheduler: str | None = None
    steps: int | None = Field(default=None, ge=IMAGE_STEPS_RANGE[0], le=IMAGE_STEPS_RANGE[1])
    cfg_scale: float | None = Field(
        default=None, ge=IMAGE_CFG_SCALE_RANGE[0], le=IMAGE_CFG_SCALE_RANGE[1]
    )

    @model_validator(mode="before")
    @classmethod
    def _no_name(cls, value: Any) -> Any:
        if isinstance(value, dict) and "name" in value:
            raise ValueError("'name' cannot be changed: it is the table's key")
        return value

    @field_validator("scheduler")
    @classmethod
    def _known_scheduler(cls, value: str | None) -> str | None:
        if value is not None and value not in IMAGE_SCHEDULERS:
            raise ValueError(f"unknown scheduler {value!r}; one of: {', '.join(IMAGE_SCHEDULERS)}")
        return value


#: OpenAI's image names and the image model each one is answered (and priced) by; the file's
#: ``[openai_image_models]`` table changes or adds names over these
DEFAULT_OPENAI_IMAGE_MODELS: Final[dict[str, str]] = {
    "dall-e-2": IMAGE_DEFAULT_MODEL,
    "dall-e-3": IMAGE_DEFAULT_MODEL,
    "gpt-image-1": IMAGE_DEFAULT_MODEL,
}


class LimitRatesConfig(_Strict):
    """A ``[limits.key]`` or ``[limits.account]`` table: the default rates of every key or
    every account (docs/limits.md); a key's or account's own value wins; unset: no limit."""

    rpm: int | None = Field(default=None, ge=1, le=2**31 - 1)  # requests per minute
    tpm: int | None = Field(default=None, ge=1, le=2**31 - 1)  # tokens per minute
    ipm: int | None = Field(default=None, ge=1, le=2**31 - 1)  # images per minute
    max_concurrent: int | None = Field(default=None, ge=1, le=2**31 - 1)  # requests in flight


class LimitsConfig(_Strict):
    key: LimitRatesConfig = Field(default_factory=LimitRatesConfig)
    account: LimitRatesConfig = Field(default_factory=LimitRatesConfig)


class FileConfig(_Strict):
    prices: dict[str, PriceConfig] = Field(default_factory=dict)
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    deployments: list[DeploymentConfig] = Field(default_factory=list)
    local_models: dict[str, LocalModelConfig] = Field(default_factory=dict)
    image_models: dict[str, ImageModelConfig] = Field(default_factory=dict)
    voices: dict[str, str] = Field(default_factory=dict)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)  # rate limits' defaults
    openai_image_models: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_OPENAI_IMAGE_MODELS)
    )

    @field_validator("local_models", mode="before")
    @classmethod
    def _named_by_key(cls, value: Any) -> Any:
        """A local model's name is its table's key: ``[local_models.qwen]`` serves ``qwen``."""
        if not isinstance(value, dict):
            return value
        named: dict[str, Any] = {}
        for key, table in value.items():
            if isinstance(table, dict):
                if "name" in table:
                    raise ValueError(f"[local_models.{key}]: 'name' is the table's key; drop it")
                table = {**table, "name": key}
            named[key] = table
        return named

    @field_validator("openai_image_models")
    @classmethod
    def _aliases_of_image_models(cls, value: dict[str, str]) -> dict[str, str]:
        """The operator's names are merged over the defaults; each must name one of the 15
        models, and none may hide one of them."""
        merged = {**DEFAULT_OPENAI_IMAGE_MODELS, **value}
        if wrong := sorted(name for name, model in merged.items() if model not in IMAGE_MODELS):
            raise ValueError(
                f"[openai_image_models] {', '.join(wrong)}: each must name one of the image "
                f"models: {', '.join(IMAGE_MODELS)}"
            )
        if taken := sorted(set(merged) & set(IMAGE_MODELS)):
            raise ValueError(f"[openai_image_models] cannot rename an image model: {taken}")
        return merged

    @field_validator("image_models")
    @classmethod
    def _known_image_models(cls, value: dict[str, ImageModelConfig]) -> dict[str, ImageModelConfig]:
        unknown = sorted(set(value) - set(IMAGE_MODELS))
        if unknown:
            raise ValueError(
                f"[image_models] names no such model: {', '.join(unknown)}; "
                f"the models are: {', '.join(IMAGE_MODELS)}"
            )
        for name, table in value.items():
            if unapplied := [key for key in UNAPPLIED_IMAGE_KEYS if key in table.model_fields_set]:
                log.warning(
                    "[image_models.%s] %s: not applied; a request without them gets the seed's "
                    "defaults (%s, %d steps, cfg %g) whatever the model",
                    name,
                    ", ".join(unapplied),
                    IMAGE_DEFAULT_SCHEDULER,
                    IMAGE_DEFAULT_STEPS,
                    IMAGE_DEFAULT_CFG_SCALE,
                )
        return value


class Settings(BaseSettings):
    """Process settings. Every field is ``MINITOOLAI_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="MINITOOLAI_", extra="ignore")

    data_dir: Path = Path("./data")
    database_url: str | None = None
    config: Path | None = None
    admin_key: SecretStr | None = None
    redis_url: str | None = None
    # rate limits (docs/limits.md): what to do when Redis is away, and where its counters live
    limits_on_redis_error: Literal["closed", "local"] = "closed"
    limits_redis_prefix: str = Field(default="minitoolai:rl:", min_length=1, max_length=100)
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
    # the group-commit settle writer (docs/billing.md): when a settle returns (after its batch
    # committed, or once journaled), and how long a batch may wait for more settles
    settle_wait: Literal["commit", "journal"] = "commit"
    # requests held in memory on a slice of their account's balance this process holds (a
    # lease, docs/billing.md), not one round trip (SQLite: one transaction) each
    ledger_leases: bool = True
    settle_gather_ms: float = Field(default=0.0, ge=0, le=10_000)
    key_cache_ttl_s: float = Field(default=5.0, ge=0)
    upstream_cooldown_s: float = Field(default=30.0, ge=0)
    local_default: bool = True  # route unserved gpt-* names to the packaged local model
    local_speech: bool = True  # serve tts-1 / tts-1-hd with the local speech engine
    # the storefront (docs/web.md): mail for password resets, and how long a login lasts
    smtp_url: SecretStr | None = None  # smtp://, smtp+starttls:// or smtps://; unset: log the link
    session_ttl_s: int = Field(default=14 * 86_400, ge=60)
    signups_per_hour: int = Field(default=20, ge=1)  # per client address, in each process
    # low-balance alerts (docs/billing.md): how often they are checked; loopback webhooks
    alert_interval_s: float = Field(default=60.0, gt=0)
    alert_webhook_allow_loopback: bool = False  # tests and self-hosting only
    # card top-ups through Stripe Checkout (docs/billing.md): offered only with both secrets
    stripe_secret_key: SecretStr | None = None  # sk_live_... / sk_test_...
    stripe_webhook_secret: SecretStr | None = None  # whsec_...: verifies POST /webhooks/stripe
    stripe_api_base: str | None = None  # Stripe's API elsewhere (a local fake, in tests)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"
    # replicas (docs/deployment.md): how long SIGTERM lets requests in flight finish; /metrics
    drain_grace_s: float = Field(default=30.0, ge=0)
    metrics_token: SecretStr | None = None  # also accepted on /metrics, besides the admin key
    metrics_open: bool = False  # /metrics without a token (a bind only the scraper reaches)

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
