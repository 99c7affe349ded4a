"""The plain parts of embeddings: prices, vector arithmetic, the wire's encodings, and what
importing the domain costs."""

from __future__ import annotations

import base64
import subprocess
import sys

import numpy as np
import orjson

from minitoolai import catalog
from minitoolai.embeddings.service import Embedded
from minitoolai.embeddings.wire import body
from minitoolai.engines.base import EmbeddingResult
from minitoolai.engines.embeddings.vectors import normalised, shortened
from minitoolai.ledger.pricing import DEFAULT_PRICES


def test_every_embedding_model_has_its_price_per_million_input_tokens() -> None:
    expected = {
        "text-embedding-3-small": 20,
        "text-embedding-3-large": 130,
        "text-embedding-ada-002": 100,
        "all-minilm-l6-v2": 20,
    }
    assert set(catalog.EMBEDDING_DIMENSIONS) == set(expected)
    for model, nano_per_token in expected.items():
        assert DEFAULT_PRICES[model].tokens(1_000_000, 0) == nano_per_token * 1_000_000
        assert DEFAULT_PRICES[model].tokens(7, 0) == 7 * nano_per_token  # exact, no rounding


def test_shortening_keeps_a_prefix_at_unit_length() -> None:
    rows = normalised(np.array([[3.0, 4.0, 12.0], [0.0, 0.0, 0.0]], dtype=np.float32))
    assert np.allclose(rows[0], [3 / 13, 4 / 13, 12 / 13]) and not rows[1].any()
    short = shortened(rows, 2)
    assert np.allclose(short[0], [0.6, 0.8]) and not short[1].any()
    assert shortened(rows, None) is rows and shortened(rows, 3) is rows


def test_both_encodings_carry_the_same_float32s() -> None:
    vectors = normalised(np.random.default_rng(1).standard_normal((3, 8)).astype(np.float32))
    result = EmbeddingResult(vectors, 5, "m")
    floats = orjson.loads(body(Embedded(result, 5, "float")))
    encoded = orjson.loads(body(Embedded(result, 5, "base64")))
    assert floats["usage"] == {"prompt_tokens": 5, "total_tokens": 5}
    assert [d["index"] for d in encoded["data"]] == [0, 1, 2]
    for i in range(3):
        assert np.array_equal(np.array(floats["data"][i]["embedding"], np.float32), vectors[i])
        raw = base64.b64decode(encoded["data"][i]["embedding"])
        assert np.array_equal(np.frombuffer(raw, "<f4"), vectors[i])


def test_the_domain_and_routing_load_no_model_libraries() -> None:
    code = (
        "import sys, minitoolai.embeddings.service, minitoolai.routing.build; "
        "print(' '.join(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = out.stdout.split()
    assert not [m for m in loaded if m.split(".")[0] in ("torch", "transformers")]
