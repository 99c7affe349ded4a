"""Turn configuration into a routing table: public model name -> deployments.

Sources, in order: the config file's ``[[deployments]]``; then the zero-config convention
(``OPENAI_API_KEY`` set: the seed's five gpt-* names go to OpenAI, or ``OPENAI_BASE_URL``) for
any of those names the file did not route; then local engines (see ``engines.local``).
"""

from __future__ import annotations

from collections.abc import Callable

import aiohttp

from minitoolai.engines.base import ChatEngine
from minitoolai.engines.openai_compat import OpenAICompatEngine
from minitoolai.ledger.pricing import CHAT_MODELS
from minitoolai.routing.router import Deployment, Router
from minitoolai.settings import FileConfig, ProviderConfig, Settings

#: builds an in-process engine for a ``provider = "local"`` deployment (set by engines.local)
LocalFactory = Callable[[str], ChatEngine]


def build_router(
    settings: Settings,
    config: FileConfig,
    session: aiohttp.ClientSession,
    local: LocalFactory | None = None,
) -> Router:
    router = Router(cooldown_s=settings.upstream_cooldown_s)
    providers = dict(config.providers)
    for dep in config.deployments:
        upstream = dep.upstream_model or dep.model
        engine: ChatEngine
        if dep.provider == "local":
            if local is None:
                raise ValueError(f"deployment of {dep.model}: local engines are not available")
            engine = local(upstream)
            name = f"local:{upstream}"
        else:
            if dep.provider not in providers:
                raise ValueError(
                    f"deployment of {dep.model} names provider {dep.provider!r}, which is not in "
                    f"[providers] ({', '.join(providers) or 'none configured'})"
                )
            engine = OpenAICompatEngine(dep.provider, providers[dep.provider], upstream, session)
            name = f"{dep.provider}:{upstream}"
        router.add(dep.model, Deployment(name, engine, dep.weight, dep.priority))

    if settings.openai_api_key is not None:
        openai = ProviderConfig(base_url=settings.openai_base_url, api_key=settings.openai_api_key)
        for model in CHAT_MODELS:
            if not router.knows(model):
                engine = OpenAICompatEngine("openai", openai, model, session)
                router.add(model, Deployment(f"openai:{model}", engine))
    return router
