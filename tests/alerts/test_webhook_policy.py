"""Webhook URLs under the SSRF policy: private, link-local and loopback addresses are refused
before any connection is made (judged by the policy functions; nothing here connects to a
non-loopback address), loopback only when the setting allows it."""

from __future__ import annotations

import pytest
import yarl

from minitoolai.accounts.service import AccountService
from minitoolai.alerts import AlertService, WebhookRefused, parse_webhook_url, webhook_policy
from minitoolai.alerts.webhook import checked_addresses, post_json
from minitoolai.infra.db import Database
from minitoolai.ledger.service import Ledger
from minitoolai.money import usd_to_nano
from minitoolai.people.mail import Mailer
from tests.alerts.conftest import Receiver
from tests.conftest import unique

OFF = webhook_policy(allow_loopback=False)
ON = webhook_policy(allow_loopback=True)

FORBIDDEN = [
    "http://10.0.0.1/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://127.0.0.1:8080/hook",
    "http://127.1/hook",  # a numeric spelling of loopback
    "http://2130706433/hook",
    "http://0x7f000001/hook",
    "http://[::1]/hook",
    "http://[::ffff:10.0.0.1]/hook",
    "http://192.168.1.10/hook",
    "http://172.16.0.1/hook",
    "http://[fe80::1]/hook",
    "http://100.64.0.1/hook",
    "http://0.0.0.0/hook",
    "http://localhost/hook",
]


@pytest.mark.parametrize("url", FORBIDDEN)
def test_private_link_local_and_loopback_addresses_are_refused(url: str) -> None:
    with pytest.raises(WebhookRefused) as refused:
        parse_webhook_url(url, OFF)
    assert refused.value.status_code == 400 and refused.value.param == "webhook_url"


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/x", "example.com/hook", "http://user:pw@example.com/", "http:///x",
     "javascript:alert(1)", "http://exa mple.com/", "http://example.com:0/", "x" * 3000],
)  # fmt: skip
def test_malformed_webhook_urls_are_refused(url: str) -> None:
    with pytest.raises(WebhookRefused):
        parse_webhook_url(url, ON)


def test_loopback_only_when_allowed() -> None:
    assert parse_webhook_url("http://127.0.0.1:9/hook", ON).port == 9
    assert parse_webhook_url("http://localhost:9/hook", ON).host == "localhost"
    with pytest.raises(WebhookRefused):  # allowing loopback allows nothing private
        parse_webhook_url("http://10.0.0.1/hook", ON)
    assert parse_webhook_url("https://hooks.example.com/balance", OFF).host == "hooks.example.com"


async def test_a_name_is_judged_by_every_address_it_resolves_to() -> None:
    asked: list[str] = []

    async def resolver(host: str) -> list[str]:
        asked.append(host)
        return {"hooks.example.com": ["93.184.215.14", "10.0.0.1"]}.get(host, ["169.254.169.254"])

    for url in ("https://hooks.example.com/x", "https://metadata.example/x"):
        with pytest.raises(WebhookRefused):
            await checked_addresses(yarl.URL(url), OFF, resolver)
    assert asked == ["hooks.example.com", "metadata.example"]

    async def public(host: str) -> list[str]:
        return ["93.184.215.14"]

    assert await checked_addresses(yarl.URL("https://ok.example/x"), OFF, public) == (
        "93.184.215.14",
    )


async def test_post_json_refuses_before_connecting(hook: Receiver) -> None:
    """The receiver is on loopback and listening: with the policy off it is never reached."""
    with pytest.raises(WebhookRefused):
        await post_json(hook.url, {"type": "balance.low"}, OFF)
    assert hook.connections == 0
    assert await post_json(hook.url, {"type": "balance.low"}, ON) == 204
    assert hook.connections == 1


async def test_a_name_that_resolves_privately_is_never_posted(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """Accepted when set (no DNS then), refused when sending: the resolver answers 10.0.0.1."""
    ledger = Ledger(db)

    async def rebinding(host: str) -> list[str]:
        return ["10.0.0.1"]

    try:
        account, _ = await AccountService(db, ledger).create(unique("ssrf"), 10**9)
        alerts = AlertService(db, Mailer(None), OFF, resolver=rebinding, retry_delay_s=0.01)
        await alerts.configure(
            account.id, usd_to_nano("5"), email=False, webhook_url="https://hooks.example.com/b"
        )
        assert account.id in await alerts.check_once()
        assert f"webhook for {account.name} refused" in caplog.text
        assert "not allowed (private)" in caplog.text
        await alerts.clear(account.id)
    finally:
        await ledger.close()


async def test_bad_thresholds_are_refused(db: Database) -> None:
    ledger = Ledger(db)
    try:
        account, _ = await AccountService(db, ledger).create(unique("bad"), 10**9)
        alerts = AlertService(db, Mailer(None), OFF)
        for threshold in (0, -1, 10**19):
            with pytest.raises(Exception) as bad:
                await alerts.configure(account.id, threshold)
            assert getattr(bad.value, "status_code", None) == 400
        with pytest.raises(Exception) as nowhere:
            await alerts.configure(account.id, 10**9, email=False, webhook_url=None)
        assert getattr(nowhere.value, "status_code", None) == 400
        assert await alerts.get(account.id) is None
    finally:
        await ledger.close()
