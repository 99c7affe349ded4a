"""The request bodies: the pydantic models the handlers validate with, plus what their field
validators check in code, stated from the same constants (``VALIDATOR_FACTS``)."""

from __future__ import annotations

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from minitoolai.chat.schemas import ChatRequest
from minitoolai.codes.schemas import RedeemRequest
from minitoolai.embeddings.schemas import EmbeddingRequest
from minitoolai.http.openapi import admin, chat, embeddings, images
from minitoolai.http.openapi.common import Schema
from minitoolai.http.routes.admin import (
    AlertBody,
    BudgetBody,
    LimitsBody,
    NewAccount,
    NewCodes,
    NewKey,
    Usd,
)
from minitoolai.images.schemas import JobRef, JobRequest, OpenAIImageRequest
from minitoolai.responses.schemas import ResponsesRequest
from minitoolai.speech.schemas import OpenAISpeechRequest, SeedSpeechRequest

REQUEST_MODELS: tuple[type[BaseModel], ...] = (
    ChatRequest,
    JobRequest,
    JobRef,
    OpenAIImageRequest,
    OpenAISpeechRequest,
    SeedSpeechRequest,
    EmbeddingRequest,
    ResponsesRequest,
    NewAccount,
    AlertBody,
    Usd,
    NewKey,
    NewCodes,
    RedeemRequest,
    LimitsBody,
    BudgetBody,
)

#: (model, field) -> the field's schema as its validators check it
VALIDATOR_FACTS: dict[tuple[str, str], Schema] = {
    **embeddings.VALIDATOR_FACTS,
    **images.VALIDATOR_FACTS,
    **admin.VALIDATOR_FACTS,
    **chat.VALIDATOR_FACTS,
}


def request_schemas() -> dict[str, Schema]:
    """The request models' JSON Schemas (draft 2020-12, as OpenAPI 3.1 uses), by class name."""
    _, top = models_json_schema(
        [(model, "validation") for model in REQUEST_MODELS],
        ref_template="#/components/schemas/{model}",
    )
    defs: dict[str, Schema] = top["$defs"]
    for (model, field), schema in VALIDATOR_FACTS.items():
        prop = defs[model]["properties"][field]
        title = prop.get("title")
        prop.clear()
        prop.update(schema)
        if title:
            prop["title"] = title
    return defs
