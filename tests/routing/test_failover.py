"""The one failover loop: which deployment answers, and what the client hears when none does."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from minitoolai.engines.errors import EngineBusy, EngineError, EngineRejected, EngineUnavailable
from minitoolai.errors import InvalidRequest, RateLimited, UpstreamError
from minitoolai.observability import REGISTRY
from minitoolai.routing.failover import failover
from minitoolai.routing.router import Deployment, Router


class Fake:
    """An engine whose answer is ``items``, or ``error`` before the first of them."""

    def __init__(self, error: EngineError | None = None, items: tuple[str, ...] = ()) -> None:
        self.error = error
        self.items = items
        self.asked = 0

    async def answer(self) -> AsyncIterator[str]:
        self.asked += 1
        if self.error is not None:
            raise self.error
        for item in self.items:
            yield item


def table(*engines: Fake) -> tuple[Router[Fake], list[Deployment[Fake]]]:
    router = Router[Fake](cooldown_s=60)
    deployments = [Deployment(f"fake:{i}", engine) for i, engine in enumerate(engines)]
    for deployment in deployments:
        router.add("m", deployment)
    return router, deployments


def failures(name: str) -> float:
    sample = REGISTRY.get_sample_value("minitoolai_upstream_failures_total", {"deployment": name})
    return sample or 0.0


async def ask(router: Router[Fake], deployments: list[Deployment[Fake]]) -> tuple[str, list[str]]:
    answering = await failover(router, deployments, Fake.answer, model="m")
    return answering.deployment.name, [answering.first, *[i async for i in answering.rest]]


async def test_the_first_that_yields_answers_and_the_broken_ones_cool_down(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken, empty, good, unused = (
        Fake(EngineUnavailable("connection refused")),
        Fake(),
        Fake(items=("a", "b")),
        Fake(items=("never",)),
    )
    router, deployments = table(broken, empty, good, unused)
    counts = [failures(d.name) for d in deployments]
    with caplog.at_level(logging.WARNING, "minitoolai.routing"):
        assert await ask(router, deployments) == ("fake:2", ["a", "b"])
    assert [failures(d.name) - c for d, c in zip(deployments, counts, strict=True)] == [1, 1, 0, 0]
    assert "connection refused" in caplog.text and "fake:1 returned an empty answer" in caplog.text
    assert unused.asked == 0
    # both failures cool down, so the next request tries the others first
    assert {d.name for d in router.candidates("m")[:2]} == {"fake:2", "fake:3"}
    assert deployments[2].cooldown_until == 0.0


async def test_busy_everywhere_is_a_429_with_retry_after_and_no_failure_counted() -> None:
    router, deployments = table(Fake(EngineBusy("queue full", retry_after=7)), Fake())
    before = failures("fake:0")
    with pytest.raises(RateLimited) as info:
        await ask(router, deployments)
    assert info.value.retry_after == 7 and "'m' is busy" in str(info.value)
    assert failures("fake:0") == before and deployments[0].cooldown_until == 0.0


async def test_busy_then_answering_is_answered() -> None:
    router, deployments = table(Fake(EngineBusy("queue full")), Fake(items=("x",)))
    assert await ask(router, deployments) == ("fake:1", ["x"])


async def test_rejected_is_a_400_with_the_engines_param_and_nobody_else_is_asked() -> None:
    later = Fake(items=("x",))
    router, deployments = table(Fake(EngineRejected("unknown voice 'x'", param="voice")), later)
    with pytest.raises(InvalidRequest) as info:
        await ask(router, deployments)
    assert info.value.status_code == 400 and info.value.param == "voice"
    assert "unknown voice 'x'" in str(info.value)
    assert later.asked == 0 and deployments[0].cooldown_until == 0.0


async def test_rejected_without_a_param_names_none() -> None:
    router, deployments = table(Fake(EngineRejected("mentions a voice, names no field")))
    with pytest.raises(InvalidRequest) as info:
        await ask(router, deployments)
    assert info.value.param is None  # never guessed from the words


async def test_nobody_answering_is_a_502_with_the_last_reason() -> None:
    router, deployments = table(Fake(EngineUnavailable("first down")), Fake(EngineError("boom")))
    with pytest.raises(UpstreamError) as info:
        await ask(router, deployments)
    assert info.value.status_code == 502 and "boom" in str(info.value)
    with pytest.raises(UpstreamError, match="no deployment is configured"):
        await failover(Router[Fake](), [], Fake.answer, model="m")
