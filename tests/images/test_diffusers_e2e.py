"""The seed's image snippet through the real diffusers engine (a tiny random-weight SDXL).

The weights are random, so the picture is noise; everything else is what a user runs: the
operator's config names a local diffusers folder, the in-process worker loads it through the
engine's loading code, runs the seed's scheduler, stores the PNG, and the job settles.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from PIL import Image

from tests.engines.diffusion.diffusion_tiny import build_tiny_sdxl
from tests.images.test_job_api import seed_image_snippet, wait_done
from tests.support.gateway import Gateway, running_gateway

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def diffusers_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("diffusers")
    sdxl = build_tiny_sdxl(tmp_path_factory.mktemp("tiny-sdxl"))
    extra = f"""
[image_models.realvision]
checkpoint = "{sdxl}"
"""
    with running_gateway(
        tmp,
        f"sqlite+aiosqlite:///{tmp / 'gw.db'}",
        {},
        [],
        extra_toml=extra,
        image_workers=1,
        image_engine="diffusers",
    ) as gw:
        yield gw


def test_seed_snippet_through_diffusers(diffusers_gateway: Gateway) -> None:
    gw = diffusers_gateway
    before = gw.balance_nano()
    created = json.loads(seed_image_snippet(gw.url + "/api/texttoimage/", gw.api_key))
    assert created["status"] == "success"
    done = wait_done(gw, created["jobid"], created["signature"], timeout=120)
    assert done["status"] == "success", done
    image = Image.open(io.BytesIO(requests.get(done["image_url"], timeout=10).content))
    assert image.size == (1152, 768)
    assert before - gw.balance_nano() == 1_500_000 and gw.idle_held_nano() == 0


def test_missing_weights_fail_fast_refunded_and_say_what_to_fetch(
    diffusers_gateway: Gateway, tmp_path: Path
) -> None:
    gw = diffusers_gateway
    before = gw.balance_nano()
    created = requests.post(
        gw.url + "/api/texttoimage/",
        headers=gw.headers(),
        timeout=10,
        json={"model": "dreamshaper", "prompt": "x", "width": 256, "height": 256},
    ).json()
    done = wait_done(gw, created["jobid"], created["signature"], timeout=60)
    assert done["status"] == "error"
    assert "Lykon/dreamshaper-xl-lightning" in done["message"]  # what to download
    assert "[image_models.dreamshaper]" in done["message"]  # or what to configure
    assert gw.balance_nano() == before and gw.idle_held_nano() == 0
