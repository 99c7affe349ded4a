"""Heavy requests are refused before costly work, and never stall the event loop.

Regressions of an adversarial test: a 30 MB prompt from an account with $0 was tokenized twice
on the loop before the credit check (the whole server, /healthz too, stalled ~50 s); 40 image
URLs from a $0 account were all fetched (2 GB of memory) before the hold.
"""

from __future__ import annotations

import base64
import subprocess
import sys
import time
import uuid
from collections.abc import Callable

import orjson
import pytest
import requests

from minitoolai.chat.pipeline import MAX_TOKEN_CHARS
from minitoolai.chat.tokens import count_messages, encoding
from tests.attacks.conftest import Served, gateway_process
from tests.chat.test_vision import CountingListener
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import idle_held
from tests.vision.helpers import make_image

#: /healthz latency is measured here: these run after the parallel part of the suite
pytestmark = pytest.mark.alone

BIG = 30 * 1024 * 1024  # just under the 32 MiB body cap
#: The slowest /healthz answer allowed while a heavy request runs. The stall these tests guard
#: against lasted tens of seconds (tokenizing on the loop); reading and validating a 30 MB body
#: on the loop itself takes ~0.1 s, more on a busy 2-core machine, so the bound leaves room.
STALL_S = 0.5


def big_prompt(size: int = BIG) -> bytes:
    words = "lorem ipsum dolor sit amet " * (size // 27)
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": words}]}
    return orjson.dumps(body)


POLLER = """
import sys, time, pathlib, urllib.request
url, stop = sys.argv[1], pathlib.Path(sys.argv[2])
worst, count = 0.0, 0
while not stop.exists():
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=5) as answer:
        assert answer.status == 200
    worst, count = max(worst, time.perf_counter() - start), count + 1
    time.sleep(0.02)
print(worst, count)
"""


def healthz_while(
    served: Served, work: Callable[[], requests.Response]
) -> tuple[requests.Response, float]:
    """Run ``work`` while another process polls /healthz; the slowest health answer, in s.

    The poller is a process of its own so that nothing in this one (the fake upstream
    parsing 30 MB, say) can slow its measurement down."""
    stop = served.log_path.with_name(f"stop-{uuid.uuid4().hex}")
    poller = subprocess.Popen(
        [sys.executable, "-c", POLLER, served.url + "/healthz", str(stop)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(0.3)  # the poller is polling before the work starts
        response = work()
    finally:
        stop.touch()
        out, _ = poller.communicate(timeout=30)
    worst, count = out.split()
    assert int(count) >= 1
    return response, float(worst)


def post(served: Served, key: str, data: bytes) -> requests.Response:
    return requests.post(
        served.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        data=data,
        timeout=120,
    )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Served:
    upstream = FakeUpstream()
    with gateway_process(tmp_path_factory.mktemp("heavy"), upstream) as gateway:
        gateway.upstream = upstream  # type: ignore[attr-defined]
        yield gateway  # type: ignore[misc]


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_no_token_is_longer_than_the_pre_checks_bound(name: str) -> None:
    enc = encoding(name)
    longest = max(len(enc.decode_single_token_bytes(t)) for t in range(enc.n_vocab - 1000))
    assert longest <= MAX_TOKEN_CHARS


def test_a_huge_prompt_from_an_empty_account_is_refused_at_once(served: Served) -> None:
    name, key = served.account("0")
    body = big_prompt()
    response, worst = healthz_while(served, lambda: post(served, key, body))
    assert response.status_code == 402, response.text[:300]
    assert served.balances(name) == (0, 0)
    assert worst < STALL_S, f"/healthz took {worst * 1e3:.0f} ms"


def test_a_huge_prompt_that_can_be_paid_is_served_without_stalling_the_loop(
    served: Served,
) -> None:
    name, key = served.account("20")
    body = big_prompt()
    response, worst = healthz_while(served, lambda: post(served, key, body))
    assert response.status_code == 200, response.text[:300]
    usage = response.json()["usage"]
    assert usage["prompt_tokens"] > 5_000_000
    assert idle_held(lambda: served.balances(name)[1]) == 0  # a lease given back
    assert worst < STALL_S, f"/healthz took {worst * 1e3:.0f} ms"


def test_images_from_an_empty_account_are_never_fetched(served: Served) -> None:
    listener = CountingListener()
    _, key = served.account("0")
    url = f"http://127.0.0.1:{listener.port}/image.png"
    parts = [{"type": "image_url", "image_url": {"url": url}} for _ in range(5)]
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": parts}]}
    response = post(served, key, orjson.dumps(body))
    assert response.status_code == 402
    time.sleep(0.2)
    assert listener.connections == 0


def test_more_images_than_allowed_is_a_400_before_any_fetch(served: Served) -> None:
    listener = CountingListener()
    _, key = served.account("5")
    url = f"http://127.0.0.1:{listener.port}/image.png"
    parts = [{"type": "image_url", "image_url": {"url": url}} for _ in range(40)]
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": parts}]}
    response = post(served, key, orjson.dumps(body))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "too_many_images"
    time.sleep(0.2)
    assert listener.connections == 0


def test_the_most_images_allowed_are_served_without_stalling_the_loop(served: Served) -> None:
    name, key = served.account("5")
    png = base64.b64encode(make_image("png", (2048, 2048))).decode()
    part = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}}
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": [part] * 10}]}
    response, worst = healthz_while(served, lambda: post(served, key, orjson.dumps(body)))
    assert response.status_code == 200, response.text[:300]
    assert idle_held(lambda: served.balances(name)[1]) == 0  # a lease given back
    assert worst < STALL_S, f"/healthz took {worst * 1e3:.0f} ms"


def test_fields_forwarded_upstream_are_in_the_hold(served: Served) -> None:
    """An 800 KB ``tool_calls`` history was held as a few hundred tokens, while the upstream
    bills all of it: now it is counted, so an account that cannot pay for it is refused."""
    upstream: FakeUpstream = served.upstream  # type: ignore[attr-defined]
    name, key = served.account("0.01")
    calls = [
        {
            "id": f"call_{i}",
            "type": "function",
            "function": {"name": "lookup", "arguments": orjson.dumps({"q": "x" * 800}).decode()},
        }
        for i in range(1000)
    ]
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "user", "content": "and?"},
    ]
    assert count_messages(messages) > 100_000  # about US$0.03 at gpt-4o-mini's price
    before = upstream.calls
    body = orjson.dumps({"model": "gpt-4o-mini", "messages": messages})
    response = post(served, key, body)
    assert response.status_code == 402, response.text[:300]
    assert upstream.calls == before and served.balances(name) == (10_000_000, 0)
