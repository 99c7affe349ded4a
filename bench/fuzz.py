"""``python -m bench.fuzz``: schemathesis over ``/openapi.json`` of a running gateway.

Every operation the document lists gets ``--examples`` generated requests (positive and
negative: bodies, parameters and headers that fit the schema, and ones that break it), sent one
at a time over HTTP with a timeout. A request fails the run when the answer is a server error
(any 5xx but the documented 502/503), when it hangs (no answer within the timeout), or when the
answer does not match the document (status code, content type, JSON schema). Afterwards the
ledger is audited in the gateway's database: for every account the balance and the held
amount must equal the sums of its ledger entries, and no hold may be left open.

To reach the handlers rather than the validators, some requests are steered towards data that
exists: the real account's key (and the admin key for ``/admin/``), a served chat model name,
the real account's name, a real image job and a real signed image URL.

The gateway is ``minitoolai serve`` (a subprocess, SQLite or PostgreSQL) behind a fake OpenAI
upstream (chat and speech) and the test-pattern image engine; ``tests/api`` runs the same
driver (``fuzz``, ``audit``) against a gateway in a thread, with fewer examples.

Run: ``.venv/bin/python -m bench.fuzz --examples 10000`` (prints one line per operation, then
the audit; exits 1 on any failure).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from minitoolai.catalog import CHAT_MODELS, SPEECH_MODELS

#: answers from upstreams (documented); anything else >= 500 is a bug
UPSTREAM_STATUSES = (502, 503)
KEEP = 5  # failing requests kept per operation and kind, for the report
#: values at the edges of what a JSON Schema ``format`` allows, which generators rarely pick
EDGES: dict[str, tuple[str, ...]] = {
    "date-time": (
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        "9999-12-31T23:59:59",
        "1970-01-01T00:00:00Z",
        "2000-02-29T12:00:00.123456+14:00",
    ),
}


@dataclass
class Target:
    """A running gateway and what exists in it."""

    url: str
    api_key: str
    admin_key: str
    account: str
    chat_models: tuple[str, ...] = CHAT_MODELS
    jobs: list[dict[str, Any]] = field(default_factory=list)  # {"jobid", "signature"}
    images: list[dict[str, str]] = field(default_factory=list)  # {"name", "exp", "sig"}


@dataclass
class OpResult:
    label: str
    examples: int = 0
    seconds: float = 0.0
    call_s: float = 0.0  # waiting for answers (the rest is generating and checking)
    check_s: float = 0.0
    cpu_s: float = 0.0  # this fuzzing process's CPU (generating, sending, checking)
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    hangs: list[str] = field(default_factory=list)
    nonconforming: list[str] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)

    @property
    def failures(self) -> int:
        return self.counts["server_error"] + self.counts["hang"] + self.counts["nonconforming"]

    def line(self) -> str:
        statuses = " ".join(f"{k}:{v}" for k, v in sorted(self.statuses.items()))
        rate = self.examples / self.seconds if self.seconds else 0.0
        c = self.counts
        return (
            f"{self.label:36s} {self.examples:6d} ex {self.seconds:6.1f} s ({rate:5.1f}/s; "
            f"CPU {self.cpu_s:5.1f} s, calls {self.call_s:5.1f} s, checks {self.check_s:4.1f} s) "
            f"5xx {c['server_error']} "
            f"hangs {c['hang']} nonconforming {c['nonconforming']} [{statuses}]"
        )

    def problems(self) -> list[str]:
        out = []
        for kind, items in (
            ("server error", self.server_errors),
            ("hang", self.hangs),
            ("nonconforming", self.nonconforming),
        ):
            out += [f"{self.label}: {kind}: {item}" for item in items]
        return out


# -- setting up what the fuzz can aim at --------------------------------------------------------


def _headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}


def prepare(target: Target, jobs: int = 3, timeout: float = 60.0) -> None:
    """Real image jobs (finished) and one signed image URL for the fuzz to aim at."""
    for i in range(jobs):
        answer = requests.post(
            target.url + "/api/texttoimage/",
            json={"model": "realvision", "prompt": f"fuzz target {i}", "width": 256, "height": 256},
            headers=_headers(target.api_key),
            timeout=timeout,
        )
        answer.raise_for_status()
        body = answer.json()
        target.jobs.append({"jobid": body["jobid"], "signature": body["signature"]})
    deadline = time.monotonic() + timeout
    for job in target.jobs:
        while True:
            poll = requests.post(target.url + "/api/texttoimage/jobs/", json=job, timeout=timeout)
            data = poll.json()
            if data["status"] == "success":
                parts = urlsplit(data["image_url"])
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                name = parts.path.rsplit("/", 1)[1]
                target.images.append({"name": name, "exp": query["exp"], "sig": query["sig"]})
                break
            if data["status"] in ("error", "cancelled") or time.monotonic() > deadline:
                raise RuntimeError(f"the target job did not finish: {data}")
            time.sleep(0.05)


# -- the fuzz -------------------------------------------------------------------------------------


def _short(value: Any, limit: int = 400) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=True)
    return text if len(text) <= limit else text[:limit] + f"...({len(text)} chars)"


def describe(case: Any) -> str:
    """The request a case sends, readable and replayable (the keys are not shown)."""
    headers = {
        k: ("<key>" if k.lower() == "authorization" else v) for k, v in (case.headers or {}).items()
    }
    parts = [f"{case.method.upper()} {case.formatted_path}"]
    if case.query:
        parts.append(f"query={_short(case.query)}")
    if headers:
        parts.append(f"headers={_short(headers)}")
    body = getattr(case, "body", None)
    if body is not None and type(body).__name__ != "NotSet":
        parts.append(f"body={_short(body)}")
    return " ".join(parts)


def _repair_messages(messages: Any) -> None:
    """What the schema cannot say about messages (a model validator checks it), made true:
    every message but an assistant's has content, and only a user's carries images."""
    if not isinstance(messages, list):
        return
    for message in messages:
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        if message.get("content") is None and role != "assistant":
            message["content"] = "Hello"
        content = message.get("content")
        if role != "user" and isinstance(content, list):
            message["content"] = [
                p for p in content if not isinstance(p, dict) or p.get("type") != "image_url"
            ]


def _steer(case: Any, target: Target, auth: str, steer: bool, pick: random.Random) -> None:
    """Give a generated case its key (most of the time), and when ``steer`` is set, point it
    at things that exist: a served model, the real account, job and image."""
    op = case.operation
    security = op.definition.raw.get("security", [])
    headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
    if security:
        scheme = next(iter(security[0]))
        key = target.admin_key if scheme == "adminKey" else target.api_key
        if auth == "valid":
            headers["Authorization"] = f"Bearer {key}"
        elif auth == "wrong":
            headers["Authorization"] = f"Bearer {key[:-1]}x"
    case.headers = headers
    if not steer:
        return
    body = case.body if isinstance(getattr(case, "body", None), dict) else None
    if body is not None and "messages" in body:
        body["model"] = pick.choice(target.chat_models)
        _repair_messages(body["messages"])
    if body is not None and op.path == "/v1/responses":
        body["model"] = pick.choice(target.chat_models)
    if "name" in (case.path_parameters or {}):
        if op.path.startswith("/admin/"):
            case.path_parameters["name"] = target.account
        elif target.images:
            image = pick.choice(target.images)
            case.path_parameters["name"] = image["name"]
            case.query = {"exp": image["exp"], "sig": image["sig"]}
    if body is not None and "signature" in body and target.jobs:
        body.update(pick.choice(target.jobs))
    if body is not None:
        for name, values in _PROCESS.get("edges", {}).get(op.label, {}).items():
            if pick.random() < 0.5:
                body[name] = pick.choice(values)


def _sender(
    target: Target,
    session: requests.Session,
    checks: list[Any],
    timeout: float,
    result: OpResult,
) -> Callable[..., None]:
    """Send one case; count what came back in ``result``."""

    def one(case: Any, auth: str, steer: bool, pick: random.Random) -> None:
        _steer(case, target, auth, steer, pick)
        result.examples += 1
        start = time.perf_counter()
        try:
            response = case.call(base_url=target.url, session=session, timeout=timeout)
        except requests.Timeout:
            result.counts["hang"] += 1
            if len(result.hangs) < KEEP:
                result.hangs.append(describe(case))
            return
        except requests.ConnectionError as exc:
            result.counts["server_error"] += 1
            if len(result.server_errors) < KEEP:
                result.server_errors.append(f"{describe(case)} -> connection error {exc}")
            return
        finally:
            result.call_s += time.perf_counter() - start
        status = response.status_code
        result.statuses[status] += 1
        if status >= 500 and status not in UPSTREAM_STATUSES:
            result.counts["server_error"] += 1
            if len(result.server_errors) < KEEP:
                result.server_errors.append(
                    f"{describe(case)} -> {status} {_short(response.text, 200)}"
                )
            return
        start = time.perf_counter()
        try:
            case.validate_response(response, checks=checks)
        except (Exception, BaseExceptionGroup) as exc:  # a group of failed checks
            result.counts["nonconforming"] += 1
            if len(result.nonconforming) < KEEP:
                why = " ".join(str(exc).split())
                result.nonconforming.append(f"{describe(case)} -> {status}: {_short(why, 600)}")
        finally:
            result.check_s += time.perf_counter() - start

    return one


_PROCESS: dict[str, Any] = {}  # per process: the loaded schema and a keep-alive session


def _schema(url: str, timeout: float) -> Any:
    import schemathesis

    if _PROCESS.get("url") != url:
        document = requests.get(url + "/openapi.json", timeout=timeout).json()
        _PROCESS.update(
            url=url,
            schema=schemathesis.openapi.from_dict(document),
            session=requests.Session(),
            edges=_edges(document),
        )
    return _PROCESS["schema"]


def _edges(document: dict[str, Any]) -> dict[str, dict[str, tuple[str, ...]]]:
    """Per operation label: the body fields whose ``format`` has edge values (``EDGES``)."""
    schemas = document["components"]["schemas"]
    out: dict[str, dict[str, tuple[str, ...]]] = {}
    for path, item in document["paths"].items():
        for method, op in item.items():
            ref = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            name = ref.get("schema", {}).get("$ref", "").rsplit("/", 1)[-1]
            fields = {}
            for key, prop in schemas.get(name, {}).get("properties", {}).items():
                for option in [prop, *prop.get("anyOf", [])]:
                    if option.get("format") in EDGES:
                        fields[key] = EDGES[option["format"]]
            if fields:
                out[f"{method.upper()} {path}"] = fields
    return out


def operations(target: Target, timeout: float = 30.0) -> list[str]:
    """The labels (``METHOD /path``) of every operation the target documents."""
    return [found.ok().label for found in _schema(target.url, timeout).get_all_operations()]


def fuzz_operation(
    target: Target, label: str, examples: int, seed: int | None, timeout: float
) -> OpResult:
    """Up to ``examples`` generated requests to one operation (fewer only when hypothesis
    runs out of distinct inputs, as for a path with no parameters at all)."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed
    from hypothesis import strategies as st
    from schemathesis.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )
    from schemathesis.generation import GenerationMode

    schema = _schema(target.url, timeout)
    [op] = [f.ok() for f in schema.get_all_operations() if f.ok().label == label]
    checks = [status_code_conformance, content_type_conformance, response_schema_conformance]
    result = OpResult(label)
    strategy = st.one_of(
        op.as_strategy(generation_mode=GenerationMode.POSITIVE),
        op.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )
    test = given(
        case=strategy,
        auth=st.sampled_from(["valid"] * 8 + ["missing", "wrong"]),
        steer=st.sampled_from([True, False, False]),
        pick=st.randoms(use_true_random=False),
    )(_sender(target, _PROCESS["session"], checks, timeout, result))
    test = settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=seed is None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
        print_blob=False,
    )(test)
    if seed is not None:
        test = hypothesis_seed(seed)(test)
    start, cpu = time.perf_counter(), time.process_time()
    test()
    result.seconds = time.perf_counter() - start
    result.cpu_s = time.process_time() - cpu
    return result


def fuzz(
    target: Target,
    examples: int,
    *,
    seed: int | None = None,
    timeout: float = 30.0,
    only: Callable[[str], bool] | None = None,
    workers: int = 1,
    say: Callable[[str], None] = print,
) -> list[OpResult]:
    """Fuzz every operation of the target's ``/openapi.json``; one result per operation, in
    the document's order. ``workers`` > 1 fuzzes that many operations at once, each in a
    process of its own (generating the requests costs far more CPU than answering them)."""
    labels = [label for label in operations(target, timeout) if only is None or only(label)]
    done: dict[str, OpResult] = {}
    if workers <= 1:
        for label in labels:
            done[label] = fuzz_operation(target, label, examples, seed, timeout)
            say(done[label].line())
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            futures = [
                pool.submit(fuzz_operation, target, label, examples, seed, timeout)
                for label in labels
            ]
            for future in as_completed(futures):
                result = future.result()
                done[result.label] = result
                say(result.line())
    return [done[label] for label in labels]


# -- the audit -------------------------------------------------------------------------------------


async def _audit(database_url: str, settle_s: float) -> dict[str, Any]:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            deadline = time.monotonic() + settle_s
            while True:  # image jobs still queued hold their money legitimately: let them end
                busy = (
                    await conn.execute(
                        text(
                            "SELECT count(*) FROM image_jobs WHERE status IN ('queued', 'running')"
                        )
                    )
                ).scalar_one()
                await conn.rollback()
                if not busy or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            rows = (
                await conn.execute(
                    text(
                        "SELECT a.name, a.balance, a.held, "
                        "(SELECT coalesce(sum(e.amount), 0) FROM ledger_entries e "
                        " WHERE e.account_id = a.id), "
                        "(SELECT coalesce(sum(e.held), 0) FROM ledger_entries e "
                        " WHERE e.account_id = a.id) "
                        "FROM accounts a"
                    )
                )
            ).all()
            open_holds = (
                await conn.execute(text("SELECT count(*) FROM charges WHERE status = 'held'"))
            ).scalar_one()
            entries = (await conn.execute(text("SELECT count(*) FROM ledger_entries"))).scalar_one()
    finally:
        await engine.dispose()
    mismatched = [
        f"{name}: balance {balance} held {held}, entries add up to {s_amount} / {s_held}"
        for name, balance, held, s_amount, s_held in rows
        if (int(balance), int(held)) != (int(s_amount), int(s_held))
    ]
    still_held = [name for name, _, held, _, _ in rows if int(held) != 0]
    return {
        "accounts": len(rows),
        "ledger_entries": int(entries),
        "jobs_unfinished": int(busy),
        "open_holds": int(open_holds),
        "accounts_with_held_money": still_held,
        "mismatched": mismatched,
    }


def audit(database_url: str, settle_s: float = 60.0) -> dict[str, Any]:
    """Money is conserved: every balance equals its ledger entries; no hold is left open."""
    return asyncio.run(_audit(database_url, settle_s))


def audit_ok(figures: dict[str, Any]) -> bool:
    return (
        not figures["mismatched"]
        and figures["open_holds"] == 0
        and not figures["accounts_with_held_money"]
        and figures["jobs_unfinished"] == 0
    )


# -- the bench entry: a real ``minitoolai serve`` --------------------------------------------------


def _config(upstream: str) -> str:
    lines = [
        "[providers.fake]",
        f'base_url = "{upstream}/v1"',
        'api_key = "sk-fuzz-upstream"',
        "timeout_s = 30",
        "",
    ]
    for model in (*CHAT_MODELS, *SPEECH_MODELS):
        lines += ["[[deployments]]", f'model = "{model}"', 'provider = "fake"', ""]
    return "\n".join(lines)


@contextlib.contextmanager
def served(work: Path, database: str, postgres_url: str) -> Iterator[tuple[Target, str]]:
    """A fake upstream in a thread, ``minitoolai serve`` in front of it, one rich account."""
    from bench import pg
    from bench.contenders import ADMIN_KEY, base_env
    from bench.procs import free_port, start, wait_http
    from tests.support.fake_upstream import FakeUpstream
    from tests.support.servers import serve_in_thread

    work.mkdir(parents=True, exist_ok=True)
    with serve_in_thread(FakeUpstream().app()) as upstream:
        (work / "config.toml").write_text(_config(upstream))
        env = base_env() | {
            "MINITOOLAI_CONFIG": str(work / "config.toml"),
            "MINITOOLAI_DATA_DIR": str(work / "data"),
            "MINITOOLAI_ADMIN_KEY": ADMIN_KEY,
            "MINITOOLAI_LOCAL_DEFAULT": "false",
            "MINITOOLAI_LOCAL_SPEECH": "false",
            "MINITOOLAI_IMAGE_ENGINE": "test-pattern",
            "MINITOOLAI_IMAGE_WORKERS": "1",
            "MINITOOLAI_JOB_WAIT_S": "60",
            "MINITOOLAI_IMAGE_FETCH_TIMEOUT_S": "2",
            "MINITOOLAI_LOG_LEVEL": "warning",
        }
        if database == "postgres":
            why = pg.unreachable(postgres_url)
            if why:
                raise RuntimeError(f"PostgreSQL: {why}")
            pg.reset(postgres_url)
            env["MINITOOLAI_DATABASE_URL"] = postgres_url
            url = postgres_url
        else:
            url = f"sqlite+aiosqlite:///{(work / 'data' / 'minitoolai.db').resolve()}"
        port = free_port()
        cmd = [sys.executable, "-m", "minitoolai", "serve", "--host", "127.0.0.1"]
        proc = start("fuzz-gateway", [*cmd, "--port", str(port)], work / "logs", env=env)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_http(proc, f"{base}/healthz", timeout=120)
            created = requests.post(
                base + "/admin/accounts",
                json={"name": "fuzz", "credit": "1000000"},
                headers=_headers(ADMIN_KEY),
                timeout=30,
            )
            created.raise_for_status()
            yield Target(base, created.json()["api_key"], ADMIN_KEY, "fuzz"), url
        finally:
            proc.stop()


def main(argv: list[str] | None = None) -> int:
    from bench import pg

    ap = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__.split("\n")[0])
    ap.add_argument("--examples", type=int, default=10_000, help="per operation (10000)")
    ap.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--postgres-url", default=pg.DEFAULT_URL, help="its database is wiped")
    ap.add_argument("--seed", type=int, help="hypothesis seed (default: a random one, printed)")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds before a request hangs")
    ap.add_argument("--only", help="fuzz only operations whose label contains this")
    ap.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="operations fuzzed at once"
    )
    ap.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results", help="report folder"
    )
    args = ap.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    print(
        f"[fuzz] {args.examples} examples per operation, {args.database}, seed {seed}, "
        f"{args.workers} workers"
    )
    started = time.perf_counter()
    only = (lambda label: args.only in label) if args.only else None
    with served(args.out / "work" / "fuzz", args.database, args.postgres_url) as (target, db_url):
        prepare(target)
        results = fuzz(
            target,
            args.examples,
            seed=seed,
            timeout=args.timeout,
            only=only,
            workers=args.workers,
        )
        figures = audit(db_url)
    total = sum(r.examples for r in results)
    elapsed = time.perf_counter() - started
    print(f"[fuzz] {total} requests over {len(results)} operations in {elapsed:.0f} s")
    print(
        f"[fuzz] audit: {figures['accounts']} accounts, {figures['ledger_entries']} ledger "
        f"entries, {figures['open_holds']} open holds, {figures['jobs_unfinished']} jobs "
        f"unfinished, {len(figures['mismatched'])} balances off their entries"
    )
    problems = [p for r in results for p in r.problems()]
    for problem in problems:
        print(f"[fuzz] {problem}")
    for line in figures["mismatched"]:
        print(f"[fuzz] ledger: {line}")
    report = {
        "seed": seed,
        "examples_per_operation": args.examples,
        "database": args.database,
        "seconds": elapsed,
        "operations": [
            {
                "label": r.label,
                "examples": r.examples,
                "seconds": r.seconds,
                "statuses": dict(r.statuses),
                **dict(r.counts),
            }
            for r in results
        ],
        "problems": problems,
        "audit": figures,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fuzz.json").write_text(json.dumps(report, indent=2, default=str))
    print(f"[fuzz] wrote {args.out / 'fuzz.json'}")
    failed = any(r.failures for r in results) or not audit_ok(figures)
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())
