"""schemathesis over ``/openapi.json``: no server error, no hang, answers as documented.

A real gateway (uvicorn in a thread, SQLite, the test-pattern image engine with one worker) in
front of a fake upstream for every chat and speech model. Each operation of the document gets
``MINITOOLAI_FUZZ_EXAMPLES`` (default 400) generated requests, positive and negative, most
with a real account's key (the admin key under ``/admin/``) and some steered at things that
exist (a served model, the account, a real job and image), sent one at a time with a timeout.
Then money must be conserved: every account's balance and held amount equal the sums of its
ledger entries, and no hold is left open. The driver is ``bench/fuzz.py`` (``python -m
bench.fuzz`` runs it longer, against ``minitoolai serve``). Generation is derandomized, so a
failure here reproduces; the bench run uses a fresh seed each time.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import orjson
import pytest
import requests

from bench.fuzz import CHAT_MODELS, SPEECH_MODELS, Target, audit, audit_ok, fuzz, prepare
from minitoolai.http.openapi import document_bytes
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import ADMIN_KEY, running_gateway

pytestmark = pytest.mark.fuzz

#: 400 per operation: generating a request costs ~10 ms of CPU (a chat request ~70 ms), so at
#: 1,000 this one test was half of the suite's CPU (~600 s of 19 min on 2 cores); the long run
#: (``python -m bench.fuzz``, 10,000 per operation, a fresh seed) is where depth is bought
EXAMPLES = int(os.environ.get("MINITOOLAI_FUZZ_EXAMPLES", "400"))
#: generating requests costs far more CPU than answering them: one process per core
WORKERS = int(os.environ.get("MINITOOLAI_FUZZ_WORKERS", str(min(4, os.cpu_count() or 1))))


def test_fuzz_every_operation_then_audit_the_ledger(tmp_path: Path) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'fuzz.db'}"
    deployments: list[dict[str, object]] = [
        {"model": model, "provider": "fake"} for model in (*CHAT_MODELS, *SPEECH_MODELS)
    ]
    started = time.perf_counter()
    with running_gateway(
        tmp_path,
        db_url,
        {"fake": FakeUpstream()},
        deployments,
        credit="1000000",
        image_workers=1,
        job_wait_s=30.0,
        image_fetch_timeout_s=2.0,
        log_level="warning",
    ) as gw:
        served = requests.get(gw.url + "/openapi.json", timeout=10)  # no key needed
        assert served.status_code == 200 and served.content == document_bytes()
        target = Target(gw.url, gw.api_key, ADMIN_KEY, gw.account)
        prepare(target)
        results = fuzz(
            target,
            EXAMPLES,
            timeout=30.0,
            workers=WORKERS,
            say=lambda line: print(line, flush=True),
        )
        figures = audit(db_url)
    elapsed = time.perf_counter() - started
    total = sum(r.examples for r in results)
    print(f"{total} requests over {len(results)} operations in {elapsed:.0f} s; audit {figures}")

    fixed = inputless_ops()
    assert [r.label for r in results] == all_ops()
    problems = [p for r in results for p in r.problems()]
    assert problems == [], "\n".join(problems)
    assert sum(r.failures for r in results) == 0
    short = {r.label: r.examples for r in results if r.examples < EXAMPLES and r.label not in fixed}
    assert short == {}, f"operations that got fewer than {EXAMPLES} examples: {short}"
    assert audit_ok(figures), figures
    assert figures["accounts"] >= 2 and figures["ledger_entries"] > 0, figures


def _ops() -> dict[str, dict[str, object]]:
    paths = orjson.loads(document_bytes())["paths"]
    return {f"{m.upper()} {p}": op for p, item in paths.items() for m, op in item.items()}


def all_ops() -> list[str]:
    return list(_ops())


def inputless_ops() -> set[str]:
    """Operations with nothing to vary (no parameter, body or key): hypothesis runs out of
    distinct requests for them after a few dozen."""
    return {
        label
        for label, op in _ops().items()
        if not op.get("parameters") and "requestBody" not in op and not op["security"]
    }
