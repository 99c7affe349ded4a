"""Image parts are validated once, by the request's schema (``chat.schemas.ImagePart``); the
resolver and the engines read the typed part."""

from __future__ import annotations

import pytest

from minitoolai.chat.schemas import ChatRequest, ImagePart, Message, text_of
from minitoolai.errors import InvalidRequest
from minitoolai.http.responses import parse


def _message(part: object) -> dict[str, object]:
    return {"role": "user", "content": [{"type": "text", "text": "What is it?"}, part]}


def test_image_part_shapes() -> None:
    message = Message.model_validate(
        _message({"type": "image_url", "image_url": {"url": "http://x/a.png"}})
    )
    (part,) = message.images()
    assert isinstance(part, ImagePart)
    assert (part.image_url.url, part.image_url.detail) == ("http://x/a.png", "auto")
    message = Message.model_validate(
        _message({"type": "image_url", "image_url": {"url": "u", "detail": "low"}})
    )
    assert message.images()[0].image_url.detail == "low"
    assert text_of(message) == "What is it?"


@pytest.mark.parametrize(
    "part",
    [
        {"type": "image_url"},
        {"type": "image_url", "image_url": {}},
        {"type": "image_url", "image_url": {"url": ""}},
        {"type": "image_url", "image_url": {"url": 5}},
        {"type": "image_url", "image_url": {"url": "u", "detail": "ultra"}},
        {"type": "image_url", "image_url": ["u"]},
        {"type": "image_url", "image_url": "http://x/b.gif"},  # a bare string: never accepted
    ],
)
def test_malformed_image_parts_are_a_400_naming_the_part(part: dict[str, object]) -> None:
    body = {"model": "gpt-4o", "messages": [_message(part)]}
    with pytest.raises(InvalidRequest) as info:
        parse(ChatRequest, body)
    assert info.value.param is not None and info.value.param.startswith("messages.0.content")


def test_text_of_joins_text_parts_one_per_line() -> None:
    message = Message.model_validate(
        {
            "role": "user",
            "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}],
        }
    )
    assert text_of(message) == "one\ntwo"
    assert text_of(Message(role="user", content="plain")) == "plain"
    assert text_of(Message(role="assistant")) == ""
