"""Redeem codes over real HTTP, on SQLite and PostgreSQL: the admin API makes them,
``/api/redeem/`` spends them, the ledger shows each credit once, naming its batch."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import requests

from minitoolai.codes.service import INVALID_CODE
from tests.codes.conftest import CodeGateway
from tests.support.ledger_audit import audit, rows

UNKNOWN = "MTAI-ZZZZ-ZZZZ-ZZZZ-ZZZZ"


def _refused(answer: requests.Response) -> dict[str, object]:
    assert answer.status_code == 400, answer.text
    error: dict[str, object] = answer.json()["error"]
    return error


def test_a_code_made_by_the_admin_api_credits_once_and_the_ledger_names_its_batch(
    codes_gateway: CodeGateway,
) -> None:
    cg, gw = codes_gateway, codes_gateway.gw
    batch = cg.make_codes("2.5", 3, note="spring promo")
    assert batch["object"] == "code_batch" and batch["amount"] == "2.500000000"
    assert batch["count"] == 3 and batch["created_by"] == "admin-api"
    codes = batch["codes"]
    assert isinstance(codes, list) and len(set(codes)) == 3

    done = cg.redeem(gw.api_key, codes[0])
    assert done.status_code == 200, done.text
    assert done.json() == {
        "object": "redemption",
        "amount": "2.500000000",
        "batch": batch["id"],
        "balance": "7.500000000",
    }
    balance = requests.get(gw.url + "/api/balance/", headers=gw.headers(), timeout=10).json()
    assert balance["balance"] == "7.500000000" and balance["available"] == "7.500000000"
    entry = gw.admin("GET", f"/admin/accounts/{gw.account}").json()["recent_entries"][0]
    assert entry["kind"] == "redeem" and entry["amount"] == "2.500000000"
    assert entry["request"] is None and str(batch["id"]) in entry["note"]

    again, unknown = cg.redeem(gw.api_key, codes[0]), cg.redeem(gw.api_key, UNKNOWN)
    assert (
        _refused(again)
        == _refused(unknown)
        == {
            "message": INVALID_CODE,
            "type": "invalid_request_error",
            "param": "code",
            "code": "invalid_code",
        }
    )
    assert cg.balance(gw.account) == "7.500000000"

    shown = gw.admin("GET", f"/admin/codes/{batch['id']}").json()
    assert (shown["redeemed"], shown["count"], shown["note"]) == (1, 3, "spring promo")
    assert [(r["account"], r["last4"]) for r in shown["redemptions"]] == [
        (gw.account, str(codes[0])[-4:])
    ]
    assert "codes" not in shown  # the plain codes were shown once, at creation
    listed = gw.admin("GET", "/admin/codes").json()
    mine = [b for b in listed["data"] if b["id"] == batch["id"]]
    assert len(mine) == 1 and mine[0]["redeemed"] == 1 and "redemptions" not in mine[0]

    ledger = audit(cg.database_url, gw.account)
    assert ledger.problems() == []
    assert ledger.balance == ledger.topups + ledger.redeemed == 7_500_000_000


def test_the_admin_api_refuses_bad_batches_and_needs_its_key(codes_gateway: CodeGateway) -> None:
    gw = codes_gateway.gw
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    for bad in (
        {"amount": "0"},
        {"amount": "-1"},
        {"amount": "1.0000000001"},
        {"amount": "abc"},
        {"amount": "1", "count": 0},
        {"amount": "1", "count": 1001},
        {"amount": "1", "expires_at": past},
        {"amount": "1", "expires_at": "tomorrow"},
        {"amount": "1", "colour": "red"},
        {"count": 1},
    ):
        answer = gw.admin("POST", "/admin/codes", json=bad)
        assert answer.status_code == 400, (bad, answer.text)
    assert gw.admin("GET", "/admin/codes/batch_nope").status_code == 404
    for method, path in (("GET", "/admin/codes"), ("POST", "/admin/codes")):
        refused = requests.request(
            method, gw.url + path, headers=gw.headers(), json={"amount": "1"}, timeout=10
        )
        assert refused.status_code == 401
    anonymous = requests.post(gw.url + "/api/redeem/", json={"code": UNKNOWN}, timeout=10)
    assert anonymous.status_code == 401
    for body in ({}, {"code": ""}, {"code": 7}, {"code": "x" * 101}, {"code": UNKNOWN, "x": 1}):
        answer = requests.post(gw.url + "/api/redeem", json=body, headers=gw.headers(), timeout=10)
        assert answer.status_code == 400, body


def test_an_expired_code_is_refused_with_the_same_message(codes_gateway: CodeGateway) -> None:
    cg, gw = codes_gateway, codes_gateway.gw
    until = datetime.now(UTC) + timedelta(seconds=1.5)
    batch = cg.make_codes("1", 2, expires_at=until.isoformat())
    codes = batch["codes"]
    assert isinstance(codes, list)
    assert cg.redeem(gw.api_key, codes[0]).status_code == 200
    time.sleep(max(0.0, (until - datetime.now(UTC)).total_seconds()) + 0.1)
    assert _refused(cg.redeem(gw.api_key, codes[1]))["message"] == INVALID_CODE
    assert cg.balance(gw.account) == "6.000000000"


def test_fifty_requests_for_one_code_at_once_credit_once(codes_gateway: CodeGateway) -> None:
    """Five accounts, ten threads each (within each one's failure allowance)."""
    cg = codes_gateway
    accounts = [cg.new_account() for _ in range(5)]
    code = cg.make_codes("3")["codes"][0]  # type: ignore[index]
    start = threading.Barrier(50)

    def attempt(i: int) -> requests.Response:
        start.wait()  # all 50 requests leave together
        return cg.redeem(accounts[i % 5][1], code)

    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(attempt, range(50)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] + [400] * 49, statuses
    assert all(a.json()["error"]["code"] == "invalid_code" for a in answers if a.status_code == 400)
    balances = sorted(cg.balance(name) for name, _ in accounts)
    assert balances == ["0"] * 4 + ["3.000000000"]
    for name, _ in accounts:
        assert audit(cg.database_url, name).problems() == []


def test_fifty_codes_of_one_batch_by_fifty_accounts_at_once_all_credit(
    codes_gateway: CodeGateway,
) -> None:
    cg = codes_gateway
    accounts = [cg.new_account() for _ in range(50)]
    batch = cg.make_codes("0.123456789", 50)
    codes = batch["codes"]
    assert isinstance(codes, list)
    with ThreadPoolExecutor(50) as pool:
        answers = list(
            pool.map(lambda pair: cg.redeem(pair[0][1], pair[1]), zip(accounts, codes, strict=True))
        )
    assert [a.status_code for a in answers] == [200] * 50
    assert {a.json()["batch"] for a in answers} == {batch["id"]}
    assert {cg.balance(name) for name, _ in accounts} == {"0.123456789"}
    shown = cg.gw.admin("GET", f"/admin/codes/{batch['id']}").json()
    assert shown["redeemed"] == 50
    assert {r["account"] for r in shown["redemptions"]} == {name for name, _ in accounts}


def test_guessing_is_throttled_and_then_even_a_valid_code_waits(
    codes_gateway: CodeGateway,
) -> None:
    cg, gw = codes_gateway, codes_gateway.gw
    code = cg.make_codes("1")["codes"][0]  # type: ignore[index]
    for i in range(10):
        assert (
            _refused(cg.redeem(gw.api_key, f"MTAI-AAAA-AAAA-AAAA-{i:04d}"))["code"]
            == "invalid_code"
        )
    throttled = cg.redeem(gw.api_key, code)
    assert throttled.status_code == 429, throttled.text
    assert throttled.json()["error"]["type"] == "rate_limit_error"
    assert 1 <= int(throttled.headers["retry-after"]) <= 600
    assert cg.balance(gw.account) == "5.000000000"
    _, other = cg.new_account()  # per account: the code is still good for someone else
    assert cg.redeem(other, code).status_code == 200


def test_the_database_holds_no_plain_code(codes_gateway: CodeGateway) -> None:
    cg = codes_gateway
    batch = cg.make_codes("1", 5)
    codes = batch["codes"]
    assert isinstance(codes, list)
    stored = rows(cg.database_url, "SELECT * FROM redeem_codes WHERE batch_id = :b", b=batch["id"])
    everything = repr(stored) + repr(rows(cg.database_url, "SELECT * FROM code_batches"))
    assert len(stored) == 5
    for code in codes:
        body = code.replace("MTAI-", "").replace("-", "")
        assert code not in everything and body not in everything and body[:8] not in everything
