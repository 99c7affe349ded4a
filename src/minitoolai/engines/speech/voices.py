"""OpenAI's voice names mapped onto the voices actually installed.

Clients send OpenAI's names (``alloy``...); an operator with one local voice still wants all of
them to work, so by default every OpenAI name maps to the default voice. The map is plain data
so configuration can replace any entry; installed voice names are also accepted directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from minitoolai.engines.errors import EngineRejected

OPENAI_VOICES = (
    "alloy",
    "ash",
    "ballad",
    "coral",
    "echo",
    "fable",
    "onyx",
    "nova",
    "sage",
    "shimmer",
    "verse",
)


def voice_map(default: str, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every OpenAI voice -> ``default``, then ``overrides`` on top."""
    mapping = dict.fromkeys(OPENAI_VOICES, default)
    mapping.update(overrides or {})
    return mapping


def resolve_voice(requested: str, mapping: Mapping[str, str], installed: Iterable[str]) -> str:
    """The installed voice for ``requested`` (an OpenAI name or an installed voice's name)."""
    names = set(installed)
    voice = mapping.get(requested, requested)
    if voice not in names:
        known = sorted(set(mapping) | names)
        raise EngineRejected(
            f"unknown voice {requested!r}; choose one of {', '.join(known)}", param="voice"
        )
    return voice
