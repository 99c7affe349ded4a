"""A chat client that records what happened to each call, and ties each call to its charge.

Every call asks for a ``max_completion_tokens`` of its own (a multiple of ``SPACING``, far above
what the fake upstream generates, so the answer is the same), which makes each hold amount
unique: ``held_amount = prompt_hold * input_price + limit * output_price``. With the prompt's
part below ``SPACING * output_price`` the limit, and so the call, is recovered from the charge
alone: ``held_amount // (SPACING * output_price)``. No gateway internals are needed.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import requests

from tests.support.ledger_audit import Charge

MESSAGES = [{"role": "user", "content": "Count for me, please."}]
SPACING = 100
#: nano-dollars per token (input, output): the seed's prices
PRICES = {"gpt-4o-mini": (150, 600), "gpt-4o": (2500, 10_000)}


@dataclass
class Call:
    model: str
    limit: int
    stream: bool
    started: float
    ended: float = 0.0
    status: int | None = None
    complete: bool = False  # 200 and the whole answer: [DONE] (stream) or JSON with usage
    chunks: int = 0  # content chunks received
    usage: dict[str, int] | None = None
    error_body: Any = None  # the JSON of a non-200 answer
    exception: str | None = None  # a connection error, a timeout...

    @property
    def elapsed(self) -> float:
        return self.ended - self.started

    def cost(self) -> int:
        """What this call must have been charged, from the usage it was shown."""
        assert self.usage is not None
        price_in, price_out = PRICES[self.model]
        return self.usage["prompt_tokens"] * price_in + self.usage["completion_tokens"] * price_out

    def openai_error(self) -> bool:
        """A non-200 answer with OpenAI's error shape."""
        error = self.error_body.get("error") if isinstance(self.error_body, dict) else None
        return (
            isinstance(error, dict)
            and isinstance(error.get("message"), str)
            and isinstance(error.get("type"), str)
        )


class Limits:
    """Unique ``max_completion_tokens`` values, safe to share between threads."""

    def __init__(self) -> None:
        self._next = itertools.count(1)
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            return next(self._next) * SPACING


def limit_of(charge: Charge) -> int:
    return charge.held_amount // (SPACING * PRICES[charge.model][1]) * SPACING


def charges_by_call(charges: list[Charge]) -> dict[tuple[str, int], list[Charge]]:
    out: dict[tuple[str, int], list[Charge]] = {}
    for c in charges:
        out.setdefault((c.model, limit_of(c)), []).append(c)
    return out


def chat(
    url: str,
    api_key: str,
    model: str,
    limit: int,
    *,
    stream: bool,
    timeout: tuple[float, float] = (5, 30),
    on_chunk: Callable[[int], None] | None = None,
) -> Call:
    """One chat call: streams on the seed's endpoint, whole answers on OpenAI's. Never raises."""
    call = Call(model, limit, stream, time.monotonic())
    body = {"model": model, "messages": MESSAGES, "max_completion_tokens": limit}
    path = "/api/chat-completions/" if stream else "/v1/chat/completions"
    headers = {"Authorization": f"Bearer {api_key}"}
    try:
        with requests.post(
            url + path,
            json={**body, "stream": stream},
            headers=headers,
            timeout=timeout,
            stream=stream,
        ) as response:
            call.status = response.status_code
            if response.status_code != 200:
                try:
                    call.error_body = response.json()
                except ValueError:
                    call.error_body = response.text
            elif not stream:
                data = response.json()
                call.usage = data["usage"]
                call.chunks = 1
                call.complete = bool(data["choices"][0]["message"]["content"])
            else:
                _read_stream(response, call, on_chunk)
    except (requests.RequestException, OSError) as exc:
        call.exception = f"{type(exc).__name__}: {exc}"
    call.ended = time.monotonic()
    return call


def _read_stream(
    response: requests.Response, call: Call, on_chunk: Callable[[int], None] | None
) -> None:
    errored = False
    for line in response.iter_lines():
        if not line.startswith(b"data: "):
            continue
        payload = line[6:]
        if payload == b"[DONE]":
            call.complete = call.usage is not None and not errored
            return
        event = orjson.loads(payload)
        if "error" in event:
            errored = True
        if event.get("usage"):
            call.usage = event["usage"]
        for choice in event.get("choices") or []:
            if (choice.get("delta") or {}).get("content"):
                call.chunks += 1
                if on_chunk is not None:
                    on_chunk(call.chunks)


def write_config(path: Path, providers: dict[str, str], deployments: dict[str, str]) -> None:
    """A config file: ``providers`` name -> base URL, ``deployments`` model -> provider."""
    lines = []
    for name, url in providers.items():
        lines += [f"[providers.{name}]", f'base_url = "{url}/v1"', 'api_key = "sk-up"']
        lines += ["timeout_s = 30", ""]
    for model, provider in deployments.items():
        lines += ["[[deployments]]", f'model = "{model}"', f'provider = "{provider}"', ""]
    path.write_text("\n".join(lines))
