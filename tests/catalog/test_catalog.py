"""The catalog is the one list of names, limits and media types, and the seams stay closed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from minitoolai import catalog
from minitoolai.engines.speech.formats import FORMATS
from minitoolai.images.schemas import JobRequest, OpenAIImageRequest
from minitoolai.ledger.pricing import DEFAULT_PRICES
from minitoolai.speech.schemas import OpenAISpeechRequest, SeedSpeechRequest


def _modules_after(statement: str) -> list[str]:
    """The ``minitoolai``/heavy modules a fresh interpreter holds after ``statement``."""
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return out.split()


def test_the_catalog_is_plain_data() -> None:
    loaded = _modules_after("import minitoolai.catalog")
    assert not [m for m in loaded if m.split(".")[0] in ("pydantic", "torch", "PIL")]
    assert [m for m in loaded if m.startswith("minitoolai")] == ["minitoolai", "minitoolai.catalog"]


@pytest.mark.parametrize(
    ("statement", "forbidden"),
    [
        ("import minitoolai.ledger.pricing", "minitoolai.engines"),
        ("import minitoolai.images.worker", "minitoolai.engines.diffusion"),
        ("import minitoolai.images.schemas", "minitoolai.engines"),
        ("import minitoolai.settings", "minitoolai.engines"),
    ],
)
def test_no_engine_internals_behind_the_domain(statement: str, forbidden: str) -> None:
    loaded = _modules_after(statement)
    assert not [m for m in loaded if m == forbidden or m.startswith(forbidden + ".")]


def test_every_model_has_a_seed_price() -> None:
    for model in (*catalog.CHAT_MODELS, *catalog.IMAGE_MODELS, *catalog.SPEECH_MODELS):
        assert model in DEFAULT_PRICES, model
    assert len(catalog.IMAGE_MODELS) == 15 and len(catalog.CHAT_MODELS) == 5


def test_formats_and_media_types_agree() -> None:
    assert set(catalog.SPEECH_MEDIA_TYPES) == set(catalog.SPEECH_FORMATS) == FORMATS
    assert set(catalog.IMAGE_MEDIA_TYPES) == set(catalog.IMAGE_FORMATS)


def test_a_bare_image_request_gets_the_catalog_defaults() -> None:
    params = JobRequest(model="juggernaut", prompt="p").job_params()
    assert params["scheduler"] == catalog.IMAGE_DEFAULT_SCHEDULER == "DPM++ SDE"
    assert params["steps"] == catalog.IMAGE_DEFAULT_STEPS == 4
    assert params["cfg_scale"] == catalog.IMAGE_DEFAULT_CFG_SCALE == 2.0
    assert params["width"] == params["height"] == catalog.IMAGE_DEFAULT_SIZE == 1024
    assert params["format"] == catalog.IMAGE_DEFAULT_FORMAT
    openai = OpenAIImageRequest(prompt="p").job_request()
    assert openai.model == catalog.IMAGE_DEFAULT_MODEL
    assert (openai.width, openai.height) == (catalog.IMAGE_DEFAULT_SIZE,) * 2


def test_image_ranges_are_the_catalogs() -> None:
    low, high = catalog.IMAGE_SIZE_RANGE
    for size, ok in ((low, True), (high, True), (low - 1, False), (high + 1, False)):
        assert _valid(JobRequest, {"model": "amigo", "prompt": "p", "width": size}) is ok
        assert _valid(OpenAIImageRequest, {"prompt": "p", "size": f"{size}x{size}"}) is ok
    steps_low, steps_high = catalog.IMAGE_STEPS_RANGE
    assert _valid(JobRequest, {"model": "amigo", "prompt": "p", "steps": steps_high})
    assert not _valid(JobRequest, {"model": "amigo", "prompt": "p", "steps": steps_high + 1})
    assert not _valid(JobRequest, {"model": "amigo", "prompt": "p", "steps": steps_low - 1})
    assert not _valid(
        JobRequest, {"model": "amigo", "prompt": "p", "seed": catalog.IMAGE_SEED_LIMIT}
    )


def test_speech_limits_and_defaults_are_the_catalogs() -> None:
    seed = SeedSpeechRequest(input="hi")
    assert seed.model == catalog.SPEECH_DEFAULT_MODEL and seed.voice == catalog.SPEECH_DEFAULT_VOICE
    assert seed.responseFormat == catalog.SPEECH_DEFAULT_FORMAT
    assert seed.speed == catalog.SPEECH_DEFAULT_SPEED
    longest = "a" * catalog.SPEECH_MAX_INPUT_CHARS
    body = {"model": "tts-1", "voice": "alloy"}
    assert _valid(OpenAISpeechRequest, {**body, "input": longest})
    assert not _valid(OpenAISpeechRequest, {**body, "input": longest + "a"})
    slowest, fastest = catalog.SPEECH_SPEED_RANGE
    assert _valid(OpenAISpeechRequest, {**body, "input": "hi", "speed": fastest})
    assert not _valid(OpenAISpeechRequest, {**body, "input": "hi", "speed": slowest / 2})
    for model in catalog.SPEECH_MODELS:
        assert _valid(OpenAISpeechRequest, {**body, "model": model, "input": "hi"})
    assert not _valid(OpenAISpeechRequest, {**body, "model": "tts-2", "input": "hi"})


def _valid(schema: type[object], body: dict[str, object]) -> bool:
    from pydantic import BaseModel, ValidationError

    assert issubclass(schema, BaseModel)
    try:
        schema.model_validate(body)
    except ValidationError:
        return False
    return True
