"""How each speech format of the catalog is produced, and what no engine can do."""

from __future__ import annotations

import re

from minitoolai.catalog import SPEECH_MAX_INPUT_CHARS, SPEECH_SPEED_RANGE
from minitoolai.engines.base import SpeechParams
from minitoolai.engines.errors import EngineRejected

#: formats written directly from PCM, without ffmpeg
RAW_FORMATS = frozenset({"wav", "pcm"})
#: ffmpeg arguments (after the input) for each encoded format, at 24 kHz mono
FFMPEG_OUTPUT_ARGS: dict[str, list[str]] = {
    "mp3": ["-c:a", "libmp3lame", "-b:a", "64k", "-f", "mp3"],
    # OpenAI's "opus" is Ogg-encapsulated Opus
    "opus": ["-c:a", "libopus", "-b:a", "32k", "-application", "voip", "-f", "ogg"],
    # raw AAC in an ADTS stream (a streamable container, as OpenAI returns)
    "aac": ["-c:a", "aac", "-b:a", "64k", "-f", "adts"],
    "flac": ["-c:a", "flac", "-f", "flac"],
}
#: what the local engines produce: every format of the catalog (a test checks they agree)
FORMATS = RAW_FORMATS | FFMPEG_OUTPUT_ARGS.keys()
MIN_SPEED, MAX_SPEED = SPEECH_SPEED_RANGE
MAX_INPUT_CHARS = SPEECH_MAX_INPUT_CHARS
#: C0 and C1 control characters (NUL, ESC, DEL...) and lone surrogates, except tab, newline
#: and carriage return. A NUL cuts the text short in espeak-ng's C phonemizer (Piper and the
#: fallback both use it) and breaks the stream mid-way; none of them is speakable text.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def control_character_error(text: str) -> str | None:
    """Why ``text`` cannot be spoken because of a control character, or None if it can."""
    found = _CONTROL.search(text)
    if found is None:
        return None
    return (
        f"input contains a control character (U+{ord(found.group()):04X}) at position "
        f"{found.start()}; only text, tabs and line breaks can be spoken"
    )


def validate(params: SpeechParams) -> None:
    """Refuse what no engine can do, before any work starts (-> 400)."""
    if params.response_format not in FORMATS:
        raise EngineRejected(
            f"response_format must be one of {', '.join(sorted(FORMATS))}, "
            f"not {params.response_format!r}",
            param="response_format",
        )
    if not MIN_SPEED <= params.speed <= MAX_SPEED:
        raise EngineRejected(f"speed must be between {MIN_SPEED} and {MAX_SPEED}", param="speed")
    if not params.input.strip():
        raise EngineRejected("input must not be empty", param="input")
    if len(params.input) > MAX_INPUT_CHARS:
        raise EngineRejected(f"input must be at most {MAX_INPUT_CHARS} characters", param="input")
    if (problem := control_character_error(params.input)) is not None:
        raise EngineRejected(problem, param="input")
