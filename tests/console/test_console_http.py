"""The operator's console over plain HTTP against a running server, on SQLite and PostgreSQL:
who may use it, credit adjustments (exact, never below what is held, racing debits), suspension,
code batches, price overrides, the audit log, and the views of the running service."""

from __future__ import annotations

import base64
import csv
import io
import re
import threading
import time
import uuid
from decimal import Decimal
from urllib.parse import quote

import openai
import requests

from minitoolai.money import per_million
from minitoolai.web.console import FORMS, PAGES
from tests.console.conftest import KEY_TTL_S, Console
from tests.support.ledger_audit import audit
from tests.web.conftest import PASSWORD, csrf_of

NANO = Decimal(10**9)


def _chat(url: str, key: str) -> openai.types.chat.ChatCompletion:
    client = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)
    return client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hello there"}]
    )


def test_a_visitor_is_sent_to_log_in_and_a_customer_is_refused(console: Console) -> None:
    name, _ = console.new_account("1")
    batch = console.gw.admin("POST", "/admin/codes", json={"amount": "1"}).json()["id"]
    pages = [*PAGES, f"/console/accounts/{name}", f"/console/codes/{batch}"]
    for path in pages:
        visitor = requests.get(console.url + path, allow_redirects=False, timeout=10)
        assert visitor.status_code == 303, path
        assert visitor.headers["location"] == "/login?next=" + quote(path, safe="/")
        refused = console.customer.get(console.url + path, allow_redirects=False, timeout=10)
        assert refused.status_code == 403, path
        assert console.admin.get(console.url + path, timeout=10).status_code == 200, path
    before, batches = (
        console.balance(name),
        len(console.gw.admin("GET", "/admin/codes").json()["data"]),
    )
    token = csrf_of(console.customer.get(console.url + "/dashboard", timeout=10).text)
    fields = {
        "amount": "5",
        "note": "mine",
        "suspended": "1",
        "count": "1",
        "model": "gpt-4o-mini",
        "input": "0",
    }
    for form in FORMS:
        path = console.url + form.format(name=name)
        by_customer = console.customer.post(
            path, data={"csrf_token": token, **fields}, allow_redirects=False, timeout=10
        )
        assert by_customer.status_code == 403, form
        by_visitor = requests.post(path, data=fields, allow_redirects=False, timeout=10)
        assert by_visitor.status_code == 403, form  # no CSRF token: refused before anything
        no_token = console.admin.post(path, data=fields, allow_redirects=False, timeout=10)
        assert no_token.status_code == 403, form
    assert console.balance(name) == before
    assert len(console.gw.admin("GET", "/admin/codes").json()["data"]) == batches
    assert (
        "suspended"
        not in console.admin.get(console.url + f"/console/accounts/{name}").text.split(
            'id="status">'
        )[1][:12]
    )


def test_an_admin_adjusts_credit_up_and_down_exactly(console: Console) -> None:
    name, _ = console.new_account("1")
    form = f"/console/accounts/{name}"
    up = console.post(console.admin, form + "/adjust", form, amount="2.500000001", note="goodwill")
    assert up.status_code == 303, up.text
    assert console.balance(name) == Decimal("3.500000001")
    down = console.post(console.admin, form + "/adjust", form, amount="-0.000000002", note="fix")
    assert down.status_code == 303, down.text
    assert console.balance(name) == Decimal("3.499999999")
    assert down.headers["location"] == form + "?done=adjusted"
    page = console.admin.get(console.url + down.headers["location"], timeout=10).text
    assert "Credit adjusted." in page and 'id="balance">$3.499999999<' in page
    entries = console.gw.admin("GET", f"/admin/accounts/{name}").json()["recent_entries"]
    assert [(e["kind"], e["amount"], e["note"]) for e in entries[:2]] == [
        ("adjustment", "-0.000000002", "fix"),
        ("topup", "2.500000001", "goodwill"),
    ]
    no_note = console.post(console.admin, form + "/adjust", form, amount="1", note=" ")
    assert no_note.status_code == 400 and "note" in no_note.text
    bad = console.post(console.admin, form + "/adjust", form, amount="1.0000000001", note="x")
    assert bad.status_code == 400 and 'role="alert"' in bad.text
    assert audit(console.database_url, name).problems() == []


def test_a_debit_past_the_available_balance_is_refused_and_changes_nothing(
    console: Console,
) -> None:
    name, _ = console.new_account("1")
    form = f"/console/accounts/{name}"
    too_much = console.post(console.admin, form + "/adjust", form, amount="-1.000000001", note="x")
    assert too_much.status_code == 400 and "available" in too_much.text
    assert console.balance(name) == Decimal(1)
    entries = console.gw.admin("GET", f"/admin/accounts/{name}").json()["recent_entries"]
    assert [e["kind"] for e in entries] == ["topup"]
    everything = console.post(console.admin, form + "/adjust", form, amount="-1", note="close")
    assert everything.status_code == 303 and console.balance(name) == 0
    assert audit(console.database_url, name).problems() == []


def test_twenty_concurrent_debits_never_take_the_balance_below_zero(console: Console) -> None:
    name, _ = console.new_account("1")
    form = f"/console/accounts/{name}"
    token = csrf_of(console.admin.get(console.url + form, timeout=10).text)
    cookies = console.admin.cookies.get_dict()
    statuses: list[int] = []
    start = threading.Barrier(20)

    def debit() -> None:
        start.wait()
        answer = requests.post(
            console.url + form + "/adjust",
            data={"csrf_token": token, "amount": "-0.15", "note": "race"},
            cookies=cookies,
            allow_redirects=False,
            timeout=60,
        )
        statuses.append(answer.status_code)

    threads = [threading.Thread(target=debit) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [303] * 6 + [400] * 14  # 6 x 0.15 fit in 1.00, a 7th does not
    assert console.balance(name) == Decimal("0.10")
    ledger = audit(console.database_url, name)
    assert ledger.problems() == [] and ledger.balance == 100_000_000


def test_a_suspended_accounts_key_is_refused_then_works_again(console: Console) -> None:
    name, key = console.new_account("1")
    form = f"/console/accounts/{name}"
    assert _chat(console.url, key).choices[0].message.content
    done = console.post(console.admin, form + "/suspend", form, suspended="1")
    assert done.status_code == 303
    deadline = time.monotonic() + KEY_TTL_S + 2
    while True:
        answer = requests.post(
            console.url + "/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        )
        if answer.status_code == 403 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert answer.status_code == 403 and answer.json()["error"]["code"] == "account_suspended"
    assert 'id="status">suspended<' in console.admin.get(console.url + form, timeout=10).text
    console.post(console.admin, form + "/suspend", form, suspended="0")
    deadline = time.monotonic() + KEY_TTL_S + 2
    while True:
        try:
            _chat(console.url, key)
            break
        except openai.PermissionDeniedError:
            assert time.monotonic() < deadline, "the key stayed refused past the cache TTL"
            time.sleep(0.1)
    assert [
        r["action"] for r in console.audit_rows(actor=console.admin_email) if r["target"] == name
    ] == [
        "account.unsuspend",
        "account.suspend",
    ]


def test_a_suspended_persons_keys_page_is_refused(console: Console) -> None:
    form = f"/console/accounts/{console.customer_email}"
    console.post(console.admin, form + "/suspend", form, suspended="1")
    try:
        assert console.customer.get(console.url + "/keys", timeout=10).status_code == 403
        assert console.customer.get(console.url + "/playground", timeout=10).status_code == 403
        assert console.customer.get(console.url + "/dashboard", timeout=10).status_code == 200
    finally:
        console.post(console.admin, form + "/suspend", form, suspended="0")
    assert console.customer.get(console.url + "/keys", timeout=10).status_code == 200


def test_a_code_batch_made_in_the_console_redeems(console: Console) -> None:
    name, key = console.new_account("0")
    made = console.post(
        console.admin, "/console/codes", "/console/codes", amount="0.75", count="3", note="promo"
    )
    assert made.status_code == 201, made.text
    codes = re.findall(
        r"MTAI-[A-Z0-9-]+", made.text.split('id="codes-list">')[1].split("</pre>")[0]
    )
    assert len(codes) == 3
    href = re.search(r'href="data:text/csv;base64,([^"]+)"', made.text)
    assert href is not None
    rows = list(csv.DictReader(io.StringIO(base64.b64decode(href.group(1)).decode())))
    assert [r["code"] for r in rows] == codes and {r["amount_usd"] for r in rows} == {"0.750000000"}
    batch_id = rows[0]["batch"]
    redeemed = requests.post(
        console.url + "/api/redeem/",
        json={"code": codes[1]},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert redeemed.status_code == 200, redeemed.text
    assert console.balance(name) == Decimal("0.75")
    page = console.admin.get(console.url + f"/console/codes/{batch_id}", timeout=10).text
    assert name in page and codes[1][-4:] in page and codes[0] not in page
    listing = console.admin.get(console.url + "/console/codes", timeout=10).text
    assert batch_id in listing and codes[0] not in listing  # shown once, never again
    assert (
        console.gw.admin("GET", f"/admin/codes/{batch_id}").json()["created_by"]
        == console.admin_email
    )


def test_a_price_override_changes_what_the_next_chat_costs(console: Console) -> None:
    name, key = console.new_account("1")
    try:
        set_ = console.post(
            console.admin,
            "/console/prices",
            "/console/prices",
            model="gpt-4o-mini",
            input="1.5",
            output="3.000000007",
            image="",
            characters="",
        )
        assert set_.status_code == 303, set_.text
        page = console.admin.get(console.url + "/console/prices", timeout=10).text
        assert "$1.50" in page and "$3.000000007" in page
        answer = _chat(console.url, key)
        assert answer.usage is not None
        want = per_million(answer.usage.prompt_tokens, 1_500_000_000) + per_million(
            answer.usage.completion_tokens, 3_000_000_007
        )
        usage = requests.get(
            console.url + "/api/usage/", headers={"Authorization": f"Bearer {key}"}, timeout=10
        ).json()["data"]
        assert Decimal(usage[0]["cost"]) * NANO == want
        assert console.balance(name) * NANO == NANO - want
        for bad, says in [
            ("abc", "not a USD amount"),
            ("-1", "negative"),
            ("0.0000000001", "9 decimals"),
        ]:
            refused = console.post(
                console.admin, "/console/prices", "/console/prices", model="gpt-4o-mini", input=bad
            )
            assert refused.status_code == 400 and says in refused.text, bad
    finally:
        cleared = console.post(
            console.admin, "/console/prices", "/console/prices", model="gpt-4o-mini", clear="1"
        )
        assert cleared.status_code == 303
    default = _chat(console.url, key)
    assert default.usage is not None
    want = per_million(default.usage.prompt_tokens, 150_000_000) + per_million(
        default.usage.completion_tokens, 600_000_000
    )
    usage = requests.get(
        console.url + "/api/usage/", headers={"Authorization": f"Bearer {key}"}, timeout=10
    ).json()["data"]
    assert Decimal(usage[0]["cost"]) * NANO == want


def test_the_audit_log_has_one_row_per_admin_action_from_each_door(console: Console) -> None:
    name, _ = console.new_account("1")
    form = f"/console/accounts/{name}"
    console.post(console.admin, form + "/adjust", form, amount="0.5", note="audit me")
    made = console.post(console.admin, "/console/codes", "/console/codes", amount="1", count="2")
    batch_id = re.search(r"batch_[0-9a-f]{16}", made.text).group(0)  # type: ignore[union-attr]
    console.cli("credit", "add", name, "0.25", "--note", "by cli")
    key = console.gw.admin("POST", f"/admin/accounts/{name}/keys", json={"name": "api"})
    assert key.status_code == 201
    rows = console.audit_rows()
    mine = [r for r in rows if r["target"] in (name, batch_id)]
    assert sorted((r["actor"], r["action"], r["target"]) for r in mine) == sorted(
        [
            ("admin-api", "account.create", name),
            (console.admin_email, "credit.adjust", name),
            (console.admin_email, "codes.create", batch_id),
            ("cli", "credit.add", name),
            ("admin-api", "key.create", name),
        ]
    )
    by_kind = {r["action"]: r for r in mine}
    assert by_kind["credit.adjust"]["details"]["note"] == "audit me"
    assert by_kind["codes.create"]["details"]["count"] == 2
    assert by_kind["key.create"]["details"]["prefix"] == key.json()["prefix"]
    assert key.json()["api_key"] not in str(rows)  # no secret in the log
    assert rows == sorted(rows, key=lambda r: -r["id"])  # newest first
    only = console.audit_rows(action="credit.add", actor="cli")
    assert only and {(r["action"], r["actor"]) for r in only} == {("credit.add", "cli")}
    page = console.admin.get(
        console.url + "/console/audit", params={"action": "codes.create"}, timeout=10
    ).text
    assert batch_id in page and "credit.adjust" not in page.split('id="audit"')[1]
    assert console.gw.admin("GET", "/admin/audit", params={"limit": "0"}).status_code == 400


def test_revenue_deployments_and_jobs_show_the_running_service(console: Console) -> None:
    name, key = console.new_account("1")
    answer = _chat(console.url, key)
    assert answer.usage is not None
    revenue = console.admin.get(console.url + "/console/revenue", timeout=10).text
    assert "gpt-4o-mini" in revenue and "<svg" in revenue and 'class="bar"' in revenue
    deployments = console.admin.get(console.url + "/console/deployments", timeout=10).text
    assert "openai:gpt-4o-mini" in deployments and "healthy" in deployments
    job = requests.post(
        console.url + "/api/texttoimage/",
        json={"prompt": "a cat", "model": "dreamshaper"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert job.status_code in (200, 201), job.text
    jobs = console.admin.get(console.url + "/console/jobs", timeout=10).text
    # no in-process workers in these tests: the job waits in the queue
    queued = re.search(r'id="jobs-queued">(\d+)<', jobs)
    assert queued is not None and int(queued.group(1)) >= 1
    assert name in jobs and "dreamshaper" in jobs


def test_every_cli_action_writes_one_audit_row(console: Console) -> None:
    name = "cli-" + uuid.uuid4().hex[:10]
    console.cli("accounts", "create", name, "--credit", "1")
    key = console.cli("keys", "create", name, "--label", "ops")
    console.cli("keys", "revoke", key["prefix"])
    batch = console.cli("codes", "create", "0.5", "--count", "2")
    email = f"{name}@example.com"
    console.cli(
        "users", "create", email, "--account", name, "--password-stdin", stdin=PASSWORD + "\n"
    )
    rows = [
        r
        for r in console.audit_rows(actor="cli")
        if r["target"] in (name, key["prefix"], batch["id"], email)
    ]
    assert sorted((r["action"], r["target"]) for r in rows) == sorted(
        [
            ("account.create", name),
            ("key.create", name),
            ("key.revoke", key["prefix"]),
            ("codes.create", batch["id"]),
            ("user.create", email),
        ]
    )
    assert key["api_key"] not in str(rows) and not any(c in str(rows) for c in batch["codes"])
