"""The bench's fake upstream (``bench.upstream``) answers a client that asks to close the
connection (urllib's ``Connection: close``, the ``direct`` contender's check) with the whole
stream, spaced out or not."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest

from bench.cli import start_upstream
from bench.procs import Cores


@pytest.mark.parametrize("delay_ms", [0.0, 2.0])
def test_a_closing_client_gets_the_whole_stream(tmp_path: Path, delay_ms: float) -> None:
    proc, url = start_upstream(tmp_path, Cores(), 5, delay_ms)
    try:
        request = urllib.request.Request(
            url + "/v1/chat/completions",
            data=b'{"stream": true, "stream_options": {"include_usage": true}}',
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
    finally:
        proc.stop()
    assert b"w4" in body and body.endswith(b"data: [DONE]\n\n")
