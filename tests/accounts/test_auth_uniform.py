"""Every authentication failure answers the same 401 body, whatever was wrong."""

from __future__ import annotations

from datetime import timedelta

import requests

from minitoolai.accounts.auth import Authenticator
from minitoolai.accounts.service import AccountService
from minitoolai.clock import utcnow
from minitoolai.errors import AuthenticationFailed
from minitoolai.infra.db import Database
from minitoolai.ledger.service import Ledger
from tests.conftest import unique
from tests.support.gateway import Gateway

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def _create_key(gw: Gateway, **body: object) -> str:
    made = gw.admin("POST", f"/admin/accounts/{gw.account}/keys", json=body)
    assert made.status_code == 201, made.text
    return str(made.json()["api_key"])


def test_every_failure_gets_one_identical_401_body(gateway: Gateway) -> None:
    gw = gateway
    revoked = _create_key(gw)
    assert gw.admin("DELETE", f"/admin/keys/{revoked[:12]}").status_code == 200
    expired = _create_key(gw, expires_at=(utcnow() - timedelta(seconds=5)).isoformat())
    authorizations: list[str | None] = [
        None,  # missing header
        "",
        "Bearer",
        f"Basic {gw.api_key}",  # wrong scheme
        "Token abc",
        "Bearer sk-not-ours",  # not our key format
        "Bearer mtai-" + "x" * 43,  # unknown key
        f"Bearer {gw.api_key}x",
        "Bearer " + "mtai-" + "y" * 300,  # too long
        f"Bearer {revoked}",
        f"Bearer {expired}",
    ]
    bodies = set()
    for auth in authorizations:
        headers = {"Content-Type": "application/json"}
        if auth is not None:
            headers["Authorization"] = auth
        for path, body in (
            ("/v1/chat/completions", CHAT),
            ("/v1/audio/speech", {"model": "tts-1", "input": "hi", "voice": "alloy"}),
        ):
            response = requests.post(gw.url + path, headers=headers, json=body, timeout=10)
            assert response.status_code == 401, (auth, path, response.text)
            bodies.add(response.content)
    assert len(bodies) == 1, bodies
    error = requests.post(gw.url + "/v1/chat/completions", json=CHAT, timeout=10).json()["error"]
    assert error["type"] == "authentication_error" and error["code"] == "invalid_api_key"
    # and the good key still works
    ok = requests.post(gw.url + "/v1/chat/completions", headers=gw.headers(), json=CHAT, timeout=10)
    assert ok.status_code == 200


async def test_authenticator_raises_one_error_whatever_was_wrong(db: Database) -> None:
    accounts = AccountService(db, Ledger(db))
    auth = Authenticator(db, ttl=60)
    account, key = await accounts.create(unique())
    expired, _ = await accounts.create_key(account.name, expires_at=utcnow() - timedelta(seconds=1))
    revoked, _ = await accounts.create_key(account.name)
    await accounts.revoke_key(revoked[:12])
    seen = set()
    for bad in (
        None,
        "",
        "Bearer",
        f"Basic {key}",
        "Bearer mtai-x",
        f"Bearer {expired}",
        f"Bearer {revoked}",
    ):
        try:
            await auth.authenticate(bad)
        except AuthenticationFailed as exc:
            seen.add((exc.status_code, exc.message, exc.error_type, exc.code, exc.param))
        else:
            raise AssertionError(f"{bad!r} authenticated")
    assert len(seen) == 1, seen
