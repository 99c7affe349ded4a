"""A low-balance alert crosses once: one webhook POST to a loopback receiver and one email to a
loopback SMTP server; nothing more while the balance stays below; a top-up re-arms it; two
checks at once (and on PostgreSQL two replicas) send once."""

from __future__ import annotations

import asyncio
from email import message_from_bytes

import pytest

from minitoolai.accounts.service import AccountService
from minitoolai.alerts import AlertService, webhook_policy
from minitoolai.infra.db import Database
from minitoolai.ledger.service import Ledger
from minitoolai.money import usd_to_nano
from minitoolai.people.mail import Mailer
from minitoolai.people.service import PeopleService
from tests.alerts.conftest import Receiver
from tests.conftest import POSTGRES_URL, unique

LOOPBACK = webhook_policy(allow_loopback=True, timeout_s=5)


async def _spend(ledger: Ledger, account_id: int, usd: str) -> None:
    hold = await ledger.hold(account_id, usd_to_nano(usd), kind="chat", model="gpt-4o-mini")
    assert (await ledger.settle(hold.charge_id, usd_to_nano(usd))).applied


async def _customer(db: Database, ledger: Ledger, smtp_url: str) -> tuple[int, str, str]:
    people = PeopleService(db, AccountService(db, ledger), mailer=Mailer(smtp_url))
    email = unique("alert") + "@shop.test"
    person, _ = await people.create(email, "a long enough password")
    await ledger.top_up(person.account_id, usd_to_nano("10"))
    return person.account_id, email, email  # the account is named by the email


async def test_one_message_per_crossing_and_a_top_up_re_arms(
    db: Database, hook: Receiver, smtp: tuple[str, list[bytes]]
) -> None:
    smtp_url, inbox = smtp
    ledger = Ledger(db)
    try:
        account_id, email, name = await _customer(db, ledger, smtp_url)
        alerts = AlertService(db, Mailer(smtp_url), LOOPBACK, retry_delay_s=0.01)
        await alerts.configure(account_id, usd_to_nano("5"), email=True, webhook_url=hook.url)

        assert account_id not in await alerts.check_once()  # US$10 available: nothing to say
        await _spend(ledger, account_id, "4.999999999")  # 5.000000001 left: still above
        assert account_id not in await alerts.check_once()
        await _spend(ledger, account_id, "0.000000002")  # 4.999999999: crossed
        assert account_id in await alerts.check_once()
        assert hook.posts == [
            {
                "type": "balance.low",
                "account": name,
                "balance": "4.999999999",
                "threshold": "5.000000000",
                "held": "0",
                "at": hook.posts[0]["at"],
            }
        ]
        assert len(inbox) == 1
        mail = message_from_bytes(inbox[0])
        assert mail["To"] == email and mail["From"] == "billing@shop.test"
        text = mail.get_payload(decode=True).decode()  # type: ignore[union-attr]
        assert "US$4.999999999" in text and "US$5.000000000" in text
        alert = await alerts.get(account_id)
        assert alert is not None and not alert.armed and alert.alerted_at is not None

        await _spend(ledger, account_id, "1")  # further below: nothing new
        assert account_id not in await alerts.check_once()
        assert (len(hook.posts), len(inbox)) == (1, 1)

        await ledger.top_up(account_id, usd_to_nano("2.000000001"))  # 6: above again, re-armed
        assert account_id not in await alerts.check_once()
        alert = await alerts.get(account_id)
        assert alert is not None and alert.armed
        assert (len(hook.posts), len(inbox)) == (1, 1)

        await _spend(ledger, account_id, "1.5")  # 4.5: a second crossing
        assert account_id in await alerts.check_once()
        assert (len(hook.posts), len(inbox)) == (2, 2)
        assert hook.posts[1]["balance"] == "4.500000000"
        await alerts.clear(account_id)
    finally:
        await ledger.close()


async def test_two_checks_at_once_send_once(db: Database, hook: Receiver) -> None:
    ledger = Ledger(db)
    try:
        account, _ = await AccountService(db, ledger).create(unique("race"), usd_to_nano("1"))
        alerts = AlertService(db, Mailer(None), LOOPBACK, retry_delay_s=0.01)
        await alerts.configure(account.id, usd_to_nano("2"), email=False, webhook_url=hook.url)
        claimed = await asyncio.gather(*(alerts.check_once() for _ in range(4)))
        assert sum(ids.count(account.id) for ids in claimed) == 1
        assert len(hook.posts) == 1 and hook.posts[0]["account"] == account.name
        await alerts.clear(account.id)
    finally:
        await ledger.close()


async def test_two_replicas_on_postgres_send_once(postgres_db: Database, hook: Receiver) -> None:
    """Two Database objects (two pools, as two replicas have) racing the same crossing."""
    if POSTGRES_URL == "off":
        pytest.skip("PostgreSQL disabled")
    other = Database(POSTGRES_URL)
    ledger = Ledger(postgres_db)
    try:
        account, _ = await AccountService(postgres_db, ledger).create(unique("rep"), 10**9)
        first = AlertService(postgres_db, Mailer(None), LOOPBACK, retry_delay_s=0.01)
        second = AlertService(other, Mailer(None), LOOPBACK, retry_delay_s=0.01)
        await first.configure(account.id, usd_to_nano("3"), email=False, webhook_url=hook.url)
        for _round in range(3):  # re-armed and crossed again each round
            claimed = await asyncio.gather(
                *(service.check_once() for service in (first, second, first, second))
            )
            assert sum(ids.count(account.id) for ids in claimed) == 1
            await ledger.top_up(account.id, usd_to_nano("5"))
            assert account.id not in await second.check_once()  # re-armed
            await _spend(ledger, account.id, "5")
        assert len(hook.posts) == 3
        await first.clear(account.id)
    finally:
        await ledger.close()
        await other.dispose()


async def test_a_failing_receiver_is_retried_then_logged_and_the_loop_goes_on(
    db: Database, hook: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    ledger = Ledger(db)
    try:
        account, _ = await AccountService(db, ledger).create(unique("fail"), 10**9)
        alerts = AlertService(db, Mailer(None), LOOPBACK, attempts=3, retry_delay_s=0.01)
        await alerts.configure(account.id, usd_to_nano("2"), email=False, webhook_url=hook.url)
        hook.status = 500
        assert account.id in await alerts.check_once()  # claimed; sending failed, no raise
        assert hook.connections == 3 and hook.posts == []
        assert f"webhook for {account.name} not sent after 3 attempts" in caplog.text
        # a receiver that is gone altogether: refused connections, same story
        dead = hook.url.rsplit(":", 1)[0] + ":9/hooks"
        await alerts.configure(account.id, usd_to_nano("100"), email=False, webhook_url=dead)
        assert account.id in await alerts.check_once()
        await alerts.clear(account.id)
    finally:
        await ledger.close()
