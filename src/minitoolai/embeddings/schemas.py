"""An embeddings request, in OpenAI's shapes: ``input`` is a string, a list of strings, a list
of token ids or a list of token-id lists; each shape is turned into one list of inputs here.

What depends on the model (is it known, does it take ``dimensions``, how many tokens are in the
inputs) is the service's to check, once the model is known.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from minitoolai.catalog import EMBEDDING_MAX_INPUTS, EmbeddingFormat


def _token_ids(value: list[Any]) -> bool:
    return all(type(x) is int for x in value)  # bool is an int subclass, and not a token


def inputs_of(value: Any) -> list[str] | list[list[int]]:
    """The request's inputs as one list, or a ValueError that says what is wrong."""
    if isinstance(value, str):
        value = [value]
    elif isinstance(value, list) and value and _token_ids(value):
        value = [value]  # one input written as token ids
    if not isinstance(value, list):
        raise ValueError("must be a string, an array of strings or an array of token arrays")
    if not value:
        raise ValueError("must not be an empty array")
    if len(value) > EMBEDDING_MAX_INPUTS:
        raise ValueError(f"must have at most {EMBEDDING_MAX_INPUTS} inputs, not {len(value)}")
    if all(isinstance(x, str) for x in value):
        if not all(value):
            raise ValueError("must not be an empty string")
        return value
    if all(isinstance(x, list) and _token_ids(x) for x in value):
        if not all(value):
            raise ValueError("must not be an empty token array")
        return value
    raise ValueError(
        "must be a string, an array of strings, an array of token ids (integers) or an array "
        "of token-id arrays, with every item of one kind"
    )


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=256)
    input: Any
    encoding_format: EmbeddingFormat = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = Field(default=None, max_length=256)

    @field_validator("input")
    @classmethod
    def _one_list(cls, value: Any) -> list[str] | list[list[int]]:
        return inputs_of(value)

    @property
    def inputs(self) -> list[str] | list[list[int]]:
        inputs: list[str] | list[list[int]] = self.input
        return inputs
