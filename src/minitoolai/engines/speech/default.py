"""Choosing the speech engine a fresh install uses: Piper if it can run, else espeak-ng."""

from __future__ import annotations

import asyncio
import logging

from minitoolai.engines.base import SpeechEngine
from minitoolai.engines.errors import EngineUnavailable
from minitoolai.engines.speech.espeak_engine import EspeakEngine
from minitoolai.engines.speech.piper_engine import PiperEngine

log = logging.getLogger(__name__)


def default_speech_engine() -> SpeechEngine:
    """Piper with its packaged voice; espeak-ng when Piper or the voice is unavailable.
    Blocking (loads a voice); raises ``EngineUnavailable`` naming both problems if neither works.
    """
    try:
        return PiperEngine()
    except EngineUnavailable as piper_error:
        log.warning("piper speech unavailable, falling back to espeak-ng: %s", piper_error)
        try:
            return EspeakEngine()
        except EngineUnavailable as espeak_error:
            raise EngineUnavailable(
                f"no local speech engine: {piper_error}; and {espeak_error}"
            ) from espeak_error


async def open_default_speech_engine() -> SpeechEngine:
    """``default_speech_engine`` off the event loop."""
    return await asyncio.to_thread(default_speech_engine)
