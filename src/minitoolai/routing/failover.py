"""Failover: ask a model's deployments in the router's order until one starts answering.

One loop for chat and speech, and the one place where an engine's failure *before its first
item* becomes the client's error:

- ``EngineBusy``: remembered, the next deployment is tried; if every one fails and one was
  busy, 429 ``RateLimited`` with its ``retry_after``;
- ``EngineRejected``: the request itself is at fault, so no other deployment is tried: 400
  ``InvalidRequest``, with the ``param`` the engine named (never guessed from its words);
- any other ``EngineError``, or an answer with no item at all: logged, counted in
  ``minitoolai_upstream_failures``, the deployment cools down, the next one is tried;
- nobody answered: 502 ``UpstreamError``.

Money is not handled here: a caller that holds some releases it when this raises.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from prometheus_client import Histogram

from minitoolai.engines.errors import EngineBusy, EngineError, EngineRejected
from minitoolai.errors import InvalidRequest, RateLimited, UpstreamError
from minitoolai.observability import UPSTREAM_FAILURES, UPSTREAM_LATENCY
from minitoolai.routing.router import Deployment, Router

log = logging.getLogger("minitoolai.routing")

E = TypeVar("E")
T = TypeVar("T")


#: each deployment's latency histogram (``labels()`` takes a lock and builds a key each time)
_LATENCY: dict[str, Histogram] = {}


def _latency(deployment: str) -> Histogram:
    series = _LATENCY.get(deployment)
    if series is None:
        series = _LATENCY[deployment] = UPSTREAM_LATENCY.labels(deployment)
    return series


@dataclass(slots=True)
class Answering(Generic[E, T]):
    """The deployment that answered, its first item, and the rest of its answer."""

    deployment: Deployment[E]
    first: T
    rest: AsyncIterator[T]


async def failover(
    router: Router[E],
    candidates: Iterable[Deployment[E]],
    ask: Callable[[E], AsyncIterator[T]],
    *,
    model: str,
) -> Answering[E, T]:
    """The first deployment of ``candidates`` whose ``ask(engine)`` yields an item.

    ``model`` is the public name the client asked for, as the errors show it.
    """
    last_error = "no deployment is configured"
    busy: EngineBusy | None = None
    for deployment in candidates:
        answer = ask(deployment.engine)
        asked = time.perf_counter()
        try:
            first = await anext(answer)
        except StopAsyncIteration:
            last_error = f"{deployment.name} returned an empty answer"
        except EngineBusy as exc:
            busy = exc
            continue
        except EngineRejected as exc:
            raise InvalidRequest(
                f"The model rejected the request: {exc}", param=exc.param
            ) from None
        except EngineError as exc:
            last_error = str(exc)
        else:
            router.succeeded(deployment)
            _latency(deployment.name).observe(time.perf_counter() - asked)
            return Answering(deployment, first, answer)
        log.warning("deployment %s failed before the first byte: %s", deployment.name, last_error)
        UPSTREAM_FAILURES.labels(deployment.name).inc()
        router.failed(deployment)
    if busy is not None:
        raise RateLimited(
            f"The model '{model}' is busy; retry shortly.", retry_after=busy.retry_after
        )
    raise UpstreamError(f"No deployment of '{model}' could answer: {last_error}")
