"""OpenAI's image names on ``/v1/images/generations``: each answered by the image model the
``[openai_image_models]`` table maps it to, and billed as that model."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import requests
from PIL import Image

from minitoolai.catalog import IMAGE_DEFAULT_MODEL
from minitoolai.settings import FileConfig
from tests.images.test_job_api import PRICE
from tests.support.gateway import Gateway, running_gateway


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[Gateway]:
    """dall-e-3 remapped by the file; dall-e-2 and gpt-image-1 keep their defaults."""
    with running_gateway(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}",
        {},
        [],
        extra_toml='[openai_image_models]\n"dall-e-3" = "juggernaut"\n',
        image_workers=1,
    ) as gateway:
        yield gateway


def _usage_models(gw: Gateway) -> list[str]:
    rows = requests.get(gw.url + "/api/usage/", headers=gw.headers(), timeout=10).json()["data"]
    return [row["model"] for row in reversed(rows)]


def test_dall_e_3_through_the_sdk(gw: Gateway) -> None:
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=gw.api_key, max_retries=0)
    before = gw.balance_nano()
    result = client.images.generate(
        model="dall-e-3",
        prompt="a lighthouse at dusk",
        size="512x512",
        quality="hd",
        style="vivid",
        n=1,
        response_format="url",
    )
    assert len(result.data) == 1 and result.data[0].url is not None
    assert result.data[0].revised_prompt is None
    image = requests.get(result.data[0].url, timeout=10).content
    assert Image.open(io.BytesIO(image)).size == (512, 512)
    client.images.generate(model="gpt-image-1", prompt="a boat", size="auto", n=1)
    assert before - gw.balance_nano() == 2 * PRICE
    assert _usage_models(gw) == ["juggernaut", IMAGE_DEFAULT_MODEL]


def test_revised_prompt_is_left_out_not_null(gw: Gateway) -> None:
    body = {"model": "dall-e-2", "prompt": "x", "size": "256x256", "response_format": "b64_json"}
    answer = requests.post(
        gw.url + "/v1/images/generations", headers=gw.headers(), json=body, timeout=30
    ).json()
    assert list(answer["data"][0]) == ["b64_json"]


def test_the_table_must_name_image_models() -> None:
    assert FileConfig().openai_image_models == {
        "dall-e-2": IMAGE_DEFAULT_MODEL,
        "dall-e-3": IMAGE_DEFAULT_MODEL,
        "gpt-image-1": IMAGE_DEFAULT_MODEL,
    }
    merged = FileConfig.model_validate({"openai_image_models": {"my-name": "amigo"}})
    assert merged.openai_image_models["my-name"] == "amigo"
    assert merged.openai_image_models["dall-e-3"] == IMAGE_DEFAULT_MODEL
    for wrong in ({"dall-e-3": "no-such-model"}, {"realvision": "amigo"}):
        with pytest.raises(ValueError, match="openai_image_models"):
            FileConfig.model_validate({"openai_image_models": wrong})
