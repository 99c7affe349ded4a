"""The schemas the structured-output tests ask for: a nested object, an enum, an array without
``maxItems`` (as pydantic writes ``list[str]``) and integers."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Color(StrEnum):
    red = "red"
    green = "green"
    blue = "blue"


class Address(Strict):
    city: str
    street: str


class Person(Strict):
    """Nested object, enum, array without maxItems, ints."""

    name: str
    age: int
    favourite: Color
    hobbies: list[str]
    address: Address
