"""The model list, ``/v1/models``: every model this server sells."""

from __future__ import annotations

from minitoolai.http.openapi.common import (
    INT,
    STR,
    Schema,
    answers,
    list_of,
    obj,
    operation,
    path_param,
)

SCHEMAS: dict[str, Schema] = {
    "Model": obj(
        {
            "id": STR,
            "object": {"const": "model"},
            "created": INT,
            "owned_by": {"const": "minitoolai"},
        }
    ),
    "ModelList": list_of("Model"),
}


def paths() -> dict[str, Schema]:
    return {
        "/v1/models": {
            "get": operation(
                "listModels",
                "Every model this server sells: chat, images, speech, embeddings",
                "chat",
                answers("ModelList", "the models", (401,)),
            )
        },
        "/v1/models/{model}": {
            "get": operation(
                "retrieveModel",
                "One model, or 404 `model_not_found`",
                "chat",
                answers("Model", "the model", (401, 404)),
                parameters=[path_param("model", "the model's name")],
            )
        },
    }
