"""Which deployment answers a public model name.

A public name maps to deployments with a weight and a priority. Lower priority numbers are
tried first; within a priority, a weighted shuffle spreads load. A deployment that fails gets a
short cooldown and is tried last until it ends, so one dead upstream costs one failed attempt,
not one per request.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Generic, TypeVar

E = TypeVar("E")


@dataclass(eq=False)
class Deployment(Generic[E]):
    name: str  # "provider:upstream-model", what logs and the routing table show
    engine: E  # a ChatEngine or a SpeechEngine
    weight: int = 1
    priority: int = 0
    cooldown_until: float = field(default=0.0)

    def cooling(self, now: float) -> bool:
        return self.cooldown_until > now


class Router(Generic[E]):
    def __init__(self, cooldown_s: float = 30.0, rng: random.Random | None = None) -> None:
        self._routes: dict[str, list[Deployment[E]]] = {}
        self.cooldown_s = cooldown_s
        self._rng = rng or random.Random()

    def add(self, model: str, deployment: Deployment[E]) -> None:
        self._routes.setdefault(model, []).append(deployment)

    def models(self) -> list[str]:
        return sorted(self._routes)

    def knows(self, model: str) -> bool:
        return model in self._routes

    def deployments(self, model: str) -> list[Deployment[E]]:
        return list(self._routes.get(model, ()))

    def candidates(self, model: str) -> list[Deployment[E]]:
        """Every deployment for ``model``, in the order to try them."""
        now = time.monotonic()
        ready: list[Deployment[E]] = []
        cooling: list[Deployment[E]] = []
        by_priority: dict[int, list[Deployment[E]]] = {}
        for d in self._routes.get(model, ()):
            by_priority.setdefault(d.priority, []).append(d)
        for priority in sorted(by_priority):
            for d in self._weighted_order(by_priority[priority]):
                (cooling if d.cooling(now) else ready).append(d)
        return ready + cooling

    def failed(self, deployment: Deployment[E]) -> None:
        deployment.cooldown_until = time.monotonic() + self.cooldown_s

    def succeeded(self, deployment: Deployment[E]) -> None:
        deployment.cooldown_until = 0.0

    def _weighted_order(self, group: list[Deployment[E]]) -> list[Deployment[E]]:
        # Efraimidis-Spirakis: sort by u^(1/w); weight 0 goes last (a standby).
        def key(d: Deployment[E]) -> float:
            if d.weight <= 0:
                return -1.0
            return float(self._rng.random() ** (1.0 / d.weight))

        return sorted(group, key=key, reverse=True)

    def table(self) -> list[tuple[str, str, int, int]]:
        """(public name, deployment, priority, weight) rows, for ``serve``'s start-up print."""
        return [
            (model, d.name, d.priority, d.weight)
            for model in sorted(self._routes)
            for d in self._routes[model]
        ]
