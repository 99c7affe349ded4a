"""Local text-to-speech: Piper voices, with espeak-ng as the fallback.

Both engines return OpenAI's formats (mp3, opus, aac, flac, wav, pcm) at 24 kHz mono, streamed
as they are produced. Importing this package does not import ``piper`` or ``numpy``.
"""

from minitoolai.engines.speech.audio import OUTPUT_RATE
from minitoolai.engines.speech.default import default_speech_engine, open_default_speech_engine
from minitoolai.engines.speech.espeak_engine import EspeakEngine
from minitoolai.engines.speech.formats import FORMATS
from minitoolai.engines.speech.piper_engine import PiperEngine, PiperVoiceFiles, packaged_voices
from minitoolai.engines.speech.voices import OPENAI_VOICES, voice_map

__all__ = [
    "FORMATS",
    "OPENAI_VOICES",
    "OUTPUT_RATE",
    "EspeakEngine",
    "PiperEngine",
    "PiperVoiceFiles",
    "default_speech_engine",
    "open_default_speech_engine",
    "packaged_voices",
    "voice_map",
]
