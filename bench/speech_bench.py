"""Speech: real-time factor and time to first audio, through the gateway vs. the bare engine.

- **bare**: a process (pinned to the gateway core) opens the default speech engine
  (``open_default_speech_engine()``: Piper with the packaged voice, espeak-ng as the fallback)
  and consumes ``engine.synthesize(SpeechParams(...))`` itself, on uvloop;
- **through the API**: ``minitoolai serve`` with zero configuration (``tts-1`` goes to the same
  engine; ``MINITOOLAI_IMAGE_WORKERS=0``), pinned to the same core, and a client on the other
  core reading ``POST /v1/audio/speech`` as it streams.

The same ~30-word text, voice ``alloy``, ``wav`` and ``mp3`` (mp3 is encoded by an ffmpeg child
process, pinned with its parent). Per run: wall time from the call / request to the last byte,
time to the first audio byte (for ``wav``, the first byte after the 44-byte header, which the
engine sends before any synthesis), and the audio's duration, read by decoding what arrived
with ffmpeg (from the byte count for ``wav`` when ffmpeg is missing). Real-time factor here is
audio seconds / wall seconds (x real time: higher is faster). One unmeasured run per side and
format, then ``runs`` runs alternating bare / API; medians.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import orjson

from bench.aio import run as aio_run
from bench.contenders import Context
from bench.gateway import LineProc, answer_lines, create_account, fresh_home, start_serve
from bench.procs import _TICK, REPO, _proc_stat, pinned

TEXT = (
    "The lighthouse keeper climbed the stairs at dusk and lit the lamp. Far out at sea, a small "
    "boat turned toward the light, and its crew knew they would be home before the storm."
)
VOICE = "alloy"
WAV_HEADER = 44
RATE = 24_000  # every format the engines return is 24 kHz, 16-bit mono


@dataclass(frozen=True)
class SpeechLoad:
    formats: tuple[str, ...] = ("wav", "mp3")
    runs: int = 3
    timeout: float = 120.0


def _header_len(fmt: str) -> int:
    return WAV_HEADER if fmt == "wav" else 0


def _summary(t0: float, first_audio: float | None, end: float, size: int) -> dict[str, Any]:
    return {
        "first_audio_ms": None if first_audio is None else (first_audio - t0) * 1000,
        "wall_s": end - t0,
        "bytes": size,
    }


# -- bare: the engine in this process ------------------------------------------------------------


async def _bare(out_dir: Path) -> None:
    from minitoolai.engines.base import SpeechParams
    from minitoolai.engines.speech import open_default_speech_engine

    engine = await open_default_speech_engine()
    count = 0

    async def handle(command: str) -> dict[str, Any]:
        nonlocal count
        fmt = command.split()[-1]
        count += 1
        path = out_dir / f"bare-{count}.{fmt}"
        skip, size, first = _header_len(fmt), 0, None
        with open(path, "wb") as fh:
            t0 = time.perf_counter()
            async for chunk in engine.synthesize(SpeechParams(TEXT, VOICE, fmt)):
                size += len(chunk)
                if first is None and size > skip:
                    first = time.perf_counter()
                fh.write(chunk)
            end = time.perf_counter()
        return _summary(t0, first, end, size) | {"file": str(path)}

    ready = {"ready": True, "engine": type(engine).__name__, "model_id": engine.model_id}
    try:
        await answer_lines(ready, handle)
    finally:
        await engine.aclose()


# -- through the API: one request -----------------------------------------------------------------


async def _client(url: str, key: str, fmt: str, path: Path, timeout: float) -> dict[str, Any]:
    import aiohttp

    body = {"model": "tts-1", "input": TEXT, "voice": VOICE, "response_format": fmt}
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    skip, size, first = _header_len(fmt), 0, None
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        with open(path, "wb") as fh:
            t0 = time.perf_counter()
            async with session.post(url, data=orjson.dumps(body), headers=headers) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"HTTP {resp.status}: {(await resp.read())[:300]!r}")
                async for chunk in resp.content.iter_any():
                    size += len(chunk)
                    if first is None and size > skip:
                        first = time.perf_counter()
                    fh.write(chunk)
            end = time.perf_counter()
    return _summary(t0, first, end, size) | {"file": str(path)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.speech_bench", description=__doc__)
    ap.add_argument("mode", choices=("bare", "client"))
    ap.add_argument("--out-dir", type=Path, required=True, help="where audio files go")
    ap.add_argument("--url", help="client: the speech URL")
    ap.add_argument("--key", help="client: an API key")
    ap.add_argument("--format", default="wav", help="client: response_format")
    ap.add_argument("--name", default="api", help="client: the audio file's name")
    ap.add_argument("--timeout", type=float, default=120.0)
    args = ap.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    if args.mode == "bare":
        aio_run(_bare(args.out_dir))
        return
    path = args.out_dir / f"{args.name}.{args.format}"
    result = aio_run(_client(args.url, args.key, args.format, path, args.timeout))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


# -- the orchestrator side ---------------------------------------------------------------------


def audio_seconds(path: Path, fmt: str) -> float | None:
    """The duration of what arrived: decoded by ffmpeg (24 kHz mono samples counted)."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        return (path.stat().st_size - WAV_HEADER) / (2 * RATE) if fmt == "wav" else None
    decode = [ffmpeg, "-hide_banner", "-loglevel", "error", "-i", str(path), "-f", "s16le"]
    done = subprocess.run(
        [*decode, "-ac", "1", "-ar", str(RATE), "pipe:1"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    return len(done.stdout) / (2 * RATE) if done.returncode == 0 else None


def _api_run(ctx: Context, url: str, key: str, fmt: str, name: str, load: SpeechLoad) -> Any:
    cmd = [ctx.python, "-m", "bench.speech_bench", "client", "--url", url, "--key", key]
    cmd += ["--format", fmt, "--name", name, "--out-dir", str(ctx.work / "speech" / "audio")]
    cmd += ["--timeout", str(load.timeout)]
    done = subprocess.run(
        pinned(cmd, ctx.cores.client),
        capture_output=True,
        text=True,
        timeout=load.timeout + 60,
        check=False,
        cwd=REPO,
    )
    if done.returncode != 0:
        raise RuntimeError(f"speech client failed: {done.stderr.strip()[-800:]}")
    return orjson.loads(done.stdout.strip().splitlines()[-1])


def cpu_with_children(pid: int) -> float:
    """CPU seconds of ``pid`` and of the children it has waited for (ffmpeg, once it exits)."""
    stat = _proc_stat(pid)
    if stat is None:
        return 0.0
    return sum(int(stat[i]) for i in (11, 12, 13, 14)) / _TICK


def _finish(pid: int, fmt: str, one_run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``one_run()``, plus the audio's duration, x real time and CPU per audio second."""
    before = cpu_with_children(pid)
    result = one_run()
    cpu = cpu_with_children(pid) - before
    seconds = audio_seconds(Path(result["file"]), fmt)
    result["audio_s"] = seconds
    result["x_realtime"] = seconds / result["wall_s"] if seconds and result["wall_s"] else None
    result["cpu_s_per_audio_s"] = cpu / seconds if seconds else None
    return result


def _median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def run(ctx: Context, load: SpeechLoad, say: Any = print) -> dict[str, Any]:
    """Bare and through-the-API runs per format, alternating; medians per side and format."""
    audio = ctx.work / "speech" / "audio"
    shutil.rmtree(audio, ignore_errors=True)
    audio.mkdir(parents=True)
    bare_cmd = [ctx.python, "-m", "bench.speech_bench", "bare", "--out-dir", str(audio)]
    home = fresh_home(ctx, "speech", {"MINITOOLAI_IMAGE_WORKERS": "0"}, "sqlite")
    key = create_account(ctx, home, "bench-speech", "1000")
    bare = LineProc("speech-bare", pinned(bare_cmd, ctx.cores.gateway), ctx.logs, home.env)
    serve = None
    rows = []
    try:
        info = bare.read(load.timeout)
        serve, base = start_serve(ctx, home, "speech-serve")
        url = f"{base}/v1/audio/speech"
        for fmt in load.formats:
            bare.ask(f"run {fmt}", load.timeout)  # warm-up, both sides
            _api_run(ctx, url, key, fmt, f"warm-{fmt}", load)
            runs: dict[str, list[dict[str, Any]]] = {"bare": [], "api": []}
            for i in range(load.runs):
                one_bare = partial(bare.ask, f"run {fmt}", load.timeout)
                one_api = partial(_api_run, ctx, url, key, fmt, f"api-{fmt}-{i + 1}", load)
                runs["bare"].append(_finish(bare.popen.pid, fmt, one_bare))
                runs["api"].append(_finish(serve.pid, fmt, one_api))
            row: dict[str, Any] = {"format": fmt}
            for side, side_runs in runs.items():
                row[side] = {
                    k: _median(side_runs, k)
                    for k in (
                        "x_realtime",
                        "first_audio_ms",
                        "wall_s",
                        "audio_s",
                        "bytes",
                        "cpu_s_per_audio_s",
                    )
                } | {"runs": side_runs}
            b, a = row["bare"]["x_realtime"], row["api"]["x_realtime"]
            row["ratio"] = a / b if a and b else None
            firsts = [row[side]["first_audio_ms"] or 0 for side in ("bare", "api")]
            say(
                f"speech {fmt}: bare {b or 0:5.1f}x real time, API {a or 0:5.1f}x; first audio "
                f"{firsts[0]:.0f} / {firsts[1]:.0f} ms"
            )
            rows.append(row)
    finally:
        bare.stop()
        if serve is not None:
            serve.stop()
    return {
        "engine": info.get("engine"),
        "model_id": info.get("model_id"),
        "text": TEXT,
        "words": len(TEXT.split()),
        "voice": VOICE,
        "runs": load.runs,
        "formats": rows,
    }


def settings_note(load: SpeechLoad) -> str:
    return (
        f"The same {len(TEXT.split())}-word text (two sentences), voice {VOICE}, formats "
        f"{', '.join(load.formats)}. Bare: `open_default_speech_engine()` consumed in its own "
        "process on uvloop. API: `minitoolai serve` with zero configuration "
        "(MINITOOLAI_IMAGE_WORKERS=0), `POST /v1/audio/speech` with model tts-1, read as it "
        "streams by an aiohttp client on the client core. Both pinned to the gateway core "
        f"(ffmpeg children included); one unmeasured run per side and format, then {load.runs} "
        "runs alternating, medians. First audio: the first byte after the 44-byte header for "
        "wav. Audio duration: what arrived, decoded by ffmpeg."
    )


if __name__ == "__main__":
    main()
