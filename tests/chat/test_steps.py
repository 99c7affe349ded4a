"""A chat answer travels a step at a time (the events of one engine step together): the SSE
renderer writes each step as one body part, iterating by event sees the same events in order,
and an answer closed half-way closes its engine's stream, whichever way it was read."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator

import orjson

from minitoolai.chat import render
from minitoolai.chat.answer import ChatAnswer
from minitoolai.chat.events import Billed, ChatEvent, Delta, Finish
from minitoolai.engines.base import Usage, one_by_one, one_per_step

STEPS: list[list[ChatEvent]] = [
    [Delta("Hel")],
    [Delta("lo"), Delta(" there"), Finish("stop")],
    [Billed(Usage(3, 3))],
]


class Scripted(ChatAnswer):
    """An answer whose steps are ``STEPS``; ``closed`` once its steps were closed."""

    def __init__(self) -> None:
        self.closed = False
        super().__init__("chatcmpl-test", 1, "m", "fp_test")

    async def _run(self) -> AsyncGenerator[list[ChatEvent], None]:
        try:
            for step in STEPS:
                yield step
        finally:
            self.closed = True


async def _parts(answer: ChatAnswer) -> list[bytes]:
    stream = render.sse(answer, role_in_first_delta=True, include_usage=True)
    return [part async for part in stream]


def _contents(part: bytes) -> list[str | None]:
    events = [e for e in part.split(b"\n\n") if e and e != b"data: [DONE]"]
    return [orjson.loads(e[6:])["choices"][0]["delta"].get("content") for e in events]


def test_each_step_is_one_body_part() -> None:
    parts = asyncio.run(_parts(Scripted()))
    assert len(parts) == 4  # three steps, then [DONE]
    assert _contents(parts[0]) == ["Hel"]
    assert _contents(parts[1]) == ["lo", " there", None]  # the finish: an empty delta
    assert parts[1].count(b"\n\n") == 3
    assert b'"usage":{"prompt_tokens":3' in parts[2]
    assert parts[3] == b"data: [DONE]\n\n"
    assert b'"role":"assistant"' in parts[0] and b'"role"' not in parts[1]


def test_by_event_the_same_events_in_order() -> None:
    async def scenario() -> list[ChatEvent]:
        answer = Scripted()
        try:
            return [event async for event in answer]
        finally:
            await answer.aclose()

    assert asyncio.run(scenario()) == [event for step in STEPS for event in step]


def test_an_answer_closed_half_way_closes_its_steps_either_way() -> None:
    async def scenario() -> tuple[bool, bool]:
        by_event, by_step = Scripted(), Scripted()
        await anext(aiter(by_event))
        await anext(by_step.steps())
        await by_event.aclose()
        await by_step.aclose()
        return by_event.closed, by_step.closed

    assert asyncio.run(scenario()) == (True, True)


def test_the_step_adapters_close_what_they_wrap() -> None:
    """An engine that stops generating when its stream is closed (a local model) still stops
    when the pipeline reads it through ``one_per_step``, and a stream through ``one_by_one``."""
    closed: list[str] = []

    async def source(name: str) -> AsyncIterator[list[int]]:
        try:
            for i in range(10):
                yield [i]
        finally:
            closed.append(name)

    async def scenario() -> tuple[list[list[int]], list[int]]:
        steps = one_per_step(source("chunks"))
        first = await anext(steps)
        await steps.aclose()  # type: ignore[attr-defined]
        items = one_by_one(source("steps"))
        item = await anext(items)
        await items.aclose()  # type: ignore[attr-defined]
        return first, [item]

    assert asyncio.run(scenario()) == ([[0]], [0])
    assert closed == ["chunks", "steps"]
