"""Discovery as OpenAI's SDK does it: ``client.models.list()`` and ``retrieve()``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import requests

from minitoolai.catalog import IMAGE_MODELS
from tests.chat.conftest import database_url
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import ADMIN_KEY, Gateway, running_gateway

OPENAI_IMAGE_NAMES = ["dall-e-2", "dall-e-3", "gpt-image-1"]


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[Gateway]:
    deployments: list[dict[str, object]] = [
        {"model": "gpt-4o-mini", "provider": "up"},
        {"model": "gpt-4.1", "provider": "up"},
        {"model": "tts-1", "provider": "up"},
        {"model": "gpt-4o-mini-tts", "provider": "up"},
    ]
    with running_gateway(
        tmp_path, database_url("sqlite", tmp_path), {"up": FakeUpstream()}, deployments
    ) as gateway:
        yield gateway


def _client(gw: Gateway, api_key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=api_key or gw.api_key, max_retries=0)


def test_the_list_has_every_sellable_model_in_openais_shape(gw: Gateway) -> None:
    models = list(_client(gw).models.list())
    names = [m.id for m in models]
    assert names == [
        "gpt-4.1",
        "gpt-4o-mini",
        *IMAGE_MODELS,
        *OPENAI_IMAGE_NAMES,
        "gpt-4o-mini-tts",
        "tts-1",
    ]
    assert all(m.object == "model" and m.owned_by == "minitoolai" for m in models)
    raw = requests.get(gw.url + "/v1/models", headers=gw.headers(), timeout=10).json()
    assert raw["object"] == "list"
    assert set(raw["data"][0]) == {"id", "object", "created", "owned_by"}


def test_retrieve_answers_the_same_object_or_not_found(gw: Gateway) -> None:
    client = _client(gw)
    listed = {m.id: m for m in client.models.list()}
    for name in ("gpt-4o-mini", "dall-e-3", "realvision", "gpt-4o-mini-tts"):
        assert client.models.retrieve(name) == listed[name]
    for missing in ("gpt-5-ultra", "tts-1-hd"):  # tts-1-hd: a speech name nobody serves here
        with pytest.raises(openai.NotFoundError) as caught:
            client.models.retrieve(missing)
        assert caught.value.code == "model_not_found"
        assert caught.value.type == "invalid_request_error"  # as OpenAI types it


def test_a_key_limited_to_some_models_sees_only_those(gw: Gateway) -> None:
    created = requests.post(
        f"{gw.url}/admin/accounts/{gw.account}/keys",
        json={"allowed_models": ["gpt-4o-mini", "dall-e-3"]},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    client = _client(gw, created.json()["api_key"])
    assert [m.id for m in client.models.list()] == ["gpt-4o-mini", "dall-e-3"]
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4.1")
