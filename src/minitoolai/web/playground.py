"""The playground page: try chat (streamed, with an image for vision), text-to-image and
speech from the browser, on the person's own balance. The page only renders the choices; the
runs go through ``web.playground_api`` (session and CSRF header, no API key in the page)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from minitoolai.bootstrap import Services
from minitoolai.catalog import (
    IMAGE_CFG_SCALE_RANGE,
    IMAGE_DEFAULT_CFG_SCALE,
    IMAGE_DEFAULT_SCHEDULER,
    IMAGE_DEFAULT_STEPS,
    IMAGE_MAX_PROMPT_CHARS,
    IMAGE_MODELS,
    IMAGE_SCHEDULERS,
    IMAGE_SIZE_RANGE,
    IMAGE_STEPS_RANGE,
    SPEECH_DEFAULT_FORMAT,
    SPEECH_DEFAULT_VOICE,
    SPEECH_FORMATS,
    SPEECH_MAX_INPUT_CHARS,
)
from minitoolai.engines.speech.voices import OPENAI_VOICES
from minitoolai.http.deps import services
from minitoolai.people.service import WebSession
from minitoolai.web.guard import signed_in
from minitoolai.web.templating import page

#: a playground image is small by default: quick to make, cheap to show
DEFAULT_IMAGE_SIZE = 512
#: formats a browser's <audio> plays (raw PCM has no header it could read)
PLAYABLE_FORMATS = tuple(f for f in SPEECH_FORMATS if f != "pcm")


@dataclass(frozen=True, slots=True)
class ChatModel:
    name: str
    vision: bool  # some engine serving it accepts image parts


def chat_models(svc: Services) -> list[ChatModel]:
    router = svc.chat.router
    return [
        ChatModel(name, any(d.engine.accepts_images for d in router.deployments(name)))
        for name in router.models()
    ]


async def _playground(request: Request, session: WebSession) -> Response:
    svc = services(request)
    return await page(
        request,
        "playground.html",
        chat_models=chat_models(svc),
        image_models=IMAGE_MODELS,
        schedulers=IMAGE_SCHEDULERS,
        default_scheduler=IMAGE_DEFAULT_SCHEDULER,
        steps_range=IMAGE_STEPS_RANGE,
        default_steps=IMAGE_DEFAULT_STEPS,
        cfg_range=IMAGE_CFG_SCALE_RANGE,
        default_cfg=IMAGE_DEFAULT_CFG_SCALE,
        size_range=IMAGE_SIZE_RANGE,
        default_size=DEFAULT_IMAGE_SIZE,
        max_prompt=IMAGE_MAX_PROMPT_CHARS,
        speech_models=svc.speech.router.models(),
        voices=OPENAI_VOICES,
        default_voice=SPEECH_DEFAULT_VOICE,
        speech_formats=PLAYABLE_FORMATS,
        default_format=SPEECH_DEFAULT_FORMAT,
        max_speech=SPEECH_MAX_INPUT_CHARS,
    )


playground = signed_in(_playground)
