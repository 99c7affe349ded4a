"""``unless_disconnected`` runs its work in the caller's task and cancels it when the client
leaves: a 499 ``ClientGone`` for a client that left, the caller's own cancellation for anyone
else's, and an answer the work still gave once cancelled is kept."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.requests import Request

from minitoolai.http.deps import ClientGone, unless_disconnected


def _request(leaves: asyncio.Event) -> Request:
    async def receive() -> dict[str, Any]:
        await leaves.wait()
        return {"type": "http.disconnect"}

    return Request({"type": "http", "method": "POST", "headers": []}, receive)


async def test_a_client_that_leaves_cancels_the_work_and_gets_a_499() -> None:
    leaves, cleaned = asyncio.Event(), []

    async def work() -> str:
        try:
            await asyncio.sleep(30)
        finally:
            cleaned.append("released")
        return "answer"

    asyncio.get_running_loop().call_later(0.05, leaves.set)
    with pytest.raises(ClientGone):
        await unless_disconnected(_request(leaves), work())
    assert cleaned == ["released"]
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_work_done_before_the_client_leaves_is_its_answer() -> None:
    async def work() -> str:
        await asyncio.sleep(0)
        return "answer"

    assert await unless_disconnected(_request(asyncio.Event()), work()) == "answer"


async def test_an_answer_given_once_cancelled_is_kept() -> None:
    leaves = asyncio.Event()

    async def work() -> str:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            return "what was made before the client left"
        return "answer"

    asyncio.get_running_loop().call_later(0.05, leaves.set)
    got = await unless_disconnected(_request(leaves), work())
    assert got == "what was made before the client left"
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
    await asyncio.sleep(0)  # no cancellation is left pending on the caller


async def test_someone_elses_cancellation_is_not_a_client_leaving() -> None:
    async def handler() -> str:
        return await unless_disconnected(_request(asyncio.Event()), asyncio.sleep(30, "x"))

    task = asyncio.ensure_future(handler())
    await asyncio.sleep(0.05)
    task.cancel()  # the server shutting down
    with pytest.raises(asyncio.CancelledError):
        await task
