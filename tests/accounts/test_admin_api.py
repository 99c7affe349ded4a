"""The admin HTTP API and the caller's account endpoints, on a running server."""

from __future__ import annotations

from pathlib import Path

import requests

from tests.support.gateway import Gateway


def test_admin_requires_the_admin_key(gateway: Gateway) -> None:
    for headers in (
        {},
        {"Authorization": f"Bearer {gateway.api_key}"},
        {"Authorization": "Bearer x"},
    ):
        response = requests.get(gateway.url + "/admin/accounts", headers=headers, timeout=10)
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "authentication_error"


def test_accounts_credit_and_keys_over_http(gateway: Gateway) -> None:
    created = gateway.admin("POST", "/admin/accounts", json={"name": "bob", "credit": "0.5"})
    assert created.status_code == 201
    key = created.json()["api_key"]
    assert created.json()["account"]["balance"] == "0.500000000"

    topped = gateway.admin(
        "POST", "/admin/accounts/bob/credit", json={"amount": "1.25", "note": "inv 7"}
    )
    assert topped.json()["balance"] == "1.750000000"
    for bad in (
        {"amount": "-1"},
        {"amount": "0"},
        {"amount": "0.0000000001"},
        {"amount": "abc"},
        {},
    ):
        response = gateway.admin("POST", "/admin/accounts/bob/credit", json=bad)
        assert response.status_code == 400, bad
    assert gateway.admin("GET", "/admin/accounts/bob").json()["balance"] == "1.750000000"

    shown = gateway.admin("GET", "/admin/accounts/bob").json()
    assert [e["kind"] for e in shown["recent_entries"]] == ["topup", "topup"]
    assert shown["recent_entries"][0]["note"] == "inv 7"
    assert "bob" in [a["name"] for a in gateway.admin("GET", "/admin/accounts").json()["data"]]
    assert gateway.admin("GET", "/admin/accounts/nobody").status_code == 404
    assert gateway.admin("POST", "/admin/accounts", json={"name": "bob"}).status_code == 409

    balance = requests.get(
        gateway.url + "/api/balance/", headers={"Authorization": f"Bearer {key}"}, timeout=10
    )
    assert balance.json() == {
        "object": "balance",
        "currency": "USD",
        "balance": "1.750000000",
        "held": "0",
        "available": "1.750000000",
    }

    extra = gateway.admin(
        "POST", "/admin/accounts/bob/keys", json={"name": "ci", "allowed_models": ["gpt-4o"]}
    )
    assert extra.status_code == 201 and extra.json()["allowed_models"] == ["gpt-4o"]
    listed = gateway.admin("GET", "/admin/accounts/bob/keys").json()["data"]
    assert len(listed) == 2 and all("api_key" not in k for k in listed)
    limited = {"Authorization": f"Bearer {extra.json()['api_key']}"}
    refused = requests.post(
        gateway.url + "/v1/chat/completions",
        headers=limited,
        timeout=10,
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert refused.status_code == 403

    revoked = gateway.admin("DELETE", f"/admin/keys/{key[:12]}")
    assert revoked.status_code == 200
    after = requests.get(
        gateway.url + "/api/balance", headers={"Authorization": f"Bearer {key}"}, timeout=10
    )
    assert after.status_code == 401


def test_health_metrics_and_unknown_paths(gateway: Gateway, tmp_path: Path) -> None:
    health = requests.get(gateway.url + "/healthz", timeout=10)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    requests.get(gateway.url + "/api/balance/", headers=gateway.headers(), timeout=10)
    assert requests.get(gateway.url + "/metrics", timeout=10).status_code == 401
    metrics = gateway.admin("GET", "/metrics").text
    assert 'minitoolai_http_requests_total{route="/api/balance/",status="200"}' in metrics
    missing = requests.get(gateway.url + "/nope", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"
    wrong_method = requests.get(gateway.url + "/api/chat-completions/", timeout=10)
    assert wrong_method.status_code == 405


def test_hostile_text_is_a_400_not_a_500(gateway_each_db: Gateway) -> None:
    """NUL and control characters never reach the database (PostgreSQL refuses NUL)."""
    gateway = gateway_each_db
    for body in ({"name": "a\x00b"}, {"name": "tab\there"}, {"name": " "}, {"name": "x" * 201}):
        assert gateway.admin("POST", "/admin/accounts", json=body).status_code == 400, body
    name = gateway.account
    for body in ({"amount": "1", "note": "bad\x00note"}, {"amount": "1", "note": "n" * 501}):
        assert gateway.admin("POST", f"/admin/accounts/{name}/credit", json=body).status_code == 400
    for body in ({"name": "k\x00"}, {"allowed_models": ["gpt\x00"]}, {"allowed_models": [""]}):
        assert gateway.admin("POST", f"/admin/accounts/{name}/keys", json=body).status_code == 400
    assert gateway.admin("GET", "/admin/accounts/%00").status_code == 404
    assert gateway.admin("DELETE", "/admin/keys/mtai-abc%00def").status_code == 400
