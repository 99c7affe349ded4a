"""Discovery: OpenAI's ``GET /v1/models`` and ``GET /v1/models/{id}``.

Every name this server sells, in OpenAI's model object: chat (the routing table's public
names), images (the 15 models and OpenAI's image names mapped to them), speech (the names an
engine serves) and embeddings. ``owned_by`` is always ``minitoolai``: the gateway sells and
bills each name, and which provider answers is routing, which may change request by request.
A key limited to some models sees only those. An unknown id is OpenAI's 404 ``model_not_found``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from minitoolai.bootstrap import Services
from minitoolai.catalog import IMAGE_MODELS
from minitoolai.errors import ModelNotFound
from minitoolai.http.deps import principal, services
from minitoolai.http.responses import JSON

OWNER = "minitoolai"


def sellable(svc: Services) -> list[str]:
    """Each name once, by surface: chat, images, speech, embeddings."""
    names = [
        *svc.chat.router.models(),
        *IMAGE_MODELS,
        *svc.config.openai_image_models,
        *svc.speech.router.models(),
        *svc.embeddings.router.models(),
    ]
    return list(dict.fromkeys(names))


def _model(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": OWNER}


async def list_models(request: Request) -> JSON:
    who = await principal(request)
    allowed = who.allowed_models
    names = [n for n in sellable(services(request)) if allowed is None or n in allowed]
    return JSON({"object": "list", "data": [_model(n) for n in names]})


async def retrieve_model(request: Request) -> JSON:
    who = await principal(request)
    name = request.path_params["model"]
    allowed = who.allowed_models
    if (allowed is not None and name not in allowed) or name not in sellable(services(request)):
        raise ModelNotFound(
            f"The model '{name}' does not exist or you do not have access to it.",
            param="model",
        )
    return JSON(_model(name))


routes = [
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/models/{model}", retrieve_model, methods=["GET"]),
]
