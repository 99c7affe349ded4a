"""Low-balance alerts: a threshold per account, and one message when the balance crosses it.

An account's alert is *armed* while its available balance (balance less holds) is at or above
the threshold. ``check_once`` (run every ``MINITOOLAI_ALERT_INTERVAL_S`` by the app's lifespan,
off the request path) does two statements and then the sending:

1. re-arm: every disarmed alert whose account is back at or above its threshold;
2. claim: one conditional UPDATE disarms every armed alert whose account is below its threshold
   and returns them. A row is claimed by exactly one statement however many replicas run this
   at once (PostgreSQL re-checks ``armed`` after the row lock; SQLite has one writer), so each
   crossing is sent once;
3. send each claimed alert: an email to the account's owner and/or a POST to its webhook, each
   retried a few times; a failure is logged and the loop goes on.

The claim comes before the sending, so a crash in between loses that one alert rather than
sending it twice (at most once, by design). The rows are plain rows, written here; balances are
only read.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import Any

import yarl
from sqlalchemy import delete, false, insert, select, true, update

from minitoolai.alerts.webhook import (
    WebhookFailed,
    WebhookRefused,
    parse_webhook_url,
    post_json,
)
from minitoolai.clock import as_utc, utcnow
from minitoolai.errors import InvalidRequest
from minitoolai.infra.db import Database
from minitoolai.infra.tables import account_alerts, accounts, users
from minitoolai.money import MAX_BALANCE, nano_to_usd
from minitoolai.people.mail import Mailer
from minitoolai.vision.fetch import Resolver, system_resolver
from minitoolai.vision.policy import FetchPolicy

log = logging.getLogger("minitoolai.alerts")


@dataclass(slots=True)
class Alert:
    """An account's alert: below ``threshold`` nano-dollars available, tell the owner by
    ``email`` and/or POST to ``webhook_url``."""

    account_id: int
    threshold: int
    email: bool
    webhook_url: str | None
    armed: bool
    alerted_at: datetime | None

    def audit_details(self) -> dict[str, Any]:
        """What the audit log keeps: the webhook's host only (its path may carry a token)."""
        host = yarl.URL(self.webhook_url).host if self.webhook_url else None
        return {"below": nano_to_usd(self.threshold), "email": self.email, "webhook_host": host}

    def to_dict(self, account: str) -> dict[str, Any]:
        return {
            "object": "balance_alert",
            "account": account,
            "below": nano_to_usd(self.threshold),
            "email": self.email,
            "webhook_url": self.webhook_url,
            "armed": self.armed,
            "alerted_at": None if self.alerted_at is None else as_utc(self.alerted_at).isoformat(),
        }


@dataclass(slots=True)
class Crossing:
    """A claimed alert, with what its message says."""

    account_id: int
    account: str
    threshold: int
    balance: int
    held: int
    email: str | None  # the owner's, when the alert wants email and the account has a login
    webhook_url: str | None

    @property
    def available(self) -> int:
        return self.balance - self.held

    def payload(self, now: datetime) -> dict[str, Any]:
        return {
            "type": "balance.low",
            "account": self.account,
            "balance": nano_to_usd(self.available),
            "threshold": nano_to_usd(self.threshold),
            "held": nano_to_usd(self.held),
            "at": now.isoformat(),
        }


def _available() -> Any:
    return (
        select(accounts.c.balance - accounts.c.held)
        .where(accounts.c.id == account_alerts.c.account_id)
        .scalar_subquery()
    )


class AlertService:
    def __init__(
        self,
        db: Database,
        mailer: Mailer,
        policy: FetchPolicy,
        *,
        resolver: Resolver = system_resolver,
        attempts: int = 3,
        retry_delay_s: float = 1.0,
        clock: Callable[[], datetime] = utcnow,
        base_url: str | None = None,
    ) -> None:
        self.db = db
        self.mailer = mailer
        self.policy = policy
        self.resolver = resolver
        self.attempts = attempts
        self.retry_delay_s = retry_delay_s
        self.clock = clock
        self.base_url = base_url

    # -- the person's and the operator's settings ----------------------------------------------

    async def configure(
        self,
        account_id: int,
        threshold: int,
        *,
        email: bool = True,
        webhook_url: str | None = None,
    ) -> Alert:
        """Alert when the available balance goes below ``threshold`` nano-dollars (armed now;
        if it is already below, the next check sends). Raises ``InvalidRequest`` (400) for a
        threshold that is not positive or too large, or a webhook URL the policy refuses."""
        if threshold <= 0:
            raise InvalidRequest("the alert threshold must be a positive amount", param="below")
        if threshold > MAX_BALANCE:
            raise InvalidRequest(
                f"the alert threshold is at most US${nano_to_usd(MAX_BALANCE)}",
                param="below",
            )
        webhook_url = (webhook_url or "").strip() or None
        if webhook_url is not None:
            parse_webhook_url(webhook_url, self.policy)
        if not email and webhook_url is None:
            raise InvalidRequest(
                "an alert needs somewhere to go: email, a webhook URL, or both",
                param="email",
            )
        now = self.clock()
        values = {
            "threshold": threshold,
            "notify_email": email,
            "webhook_url": webhook_url,
            "armed": True,
            "alerted_at": None,
            "updated_at": now,
        }
        async with self.db.write() as conn:
            changed = await conn.execute(
                update(account_alerts)
                .where(account_alerts.c.account_id == account_id)
                .values(**values)
            )
            if not changed.rowcount:
                await conn.execute(insert(account_alerts).values(account_id=account_id, **values))
        log.info(
            "account %d: low-balance alert below US$%s",
            account_id,
            nano_to_usd(threshold),
        )
        return Alert(account_id, threshold, email, webhook_url, True, None)

    async def clear(self, account_id: int) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                delete(account_alerts).where(account_alerts.c.account_id == account_id)
            )

    async def get(self, account_id: int) -> Alert | None:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(account_alerts).where(account_alerts.c.account_id == account_id)
                )
            ).first()
        if row is None:
            return None
        return Alert(
            row.account_id,
            int(row.threshold),
            bool(row.notify_email),
            row.webhook_url,
            bool(row.armed),
            row.alerted_at,
        )

    # -- the periodic check --------------------------------------------------------------------

    async def check_once(self) -> list[int]:
        """Re-arm alerts whose accounts recovered, claim those that crossed, send them; the ids
        of the accounts this call claimed. Never raises for a message that could not be sent."""
        now = self.clock()
        avail = _available()
        async with self.db.write() as conn:
            await conn.execute(
                update(account_alerts)
                .where(
                    account_alerts.c.armed == false(),
                    account_alerts.c.threshold <= avail,
                )
                .values(armed=True)
            )
        async with self.db.write() as conn:
            claimed = (
                await conn.execute(
                    update(account_alerts)
                    .where(
                        account_alerts.c.armed == true(),
                        account_alerts.c.threshold > avail,
                    )
                    .values(armed=False, alerted_at=now)
                    .returning(
                        account_alerts.c.account_id,
                        account_alerts.c.threshold,
                        account_alerts.c.notify_email,
                        account_alerts.c.webhook_url,
                    )
                )
            ).all()
        if not claimed:
            return []
        for crossing in await self._crossings(list(claimed)):
            await self._send(crossing, now)
        return [row.account_id for row in claimed]

    async def _crossings(self, claimed: list[Any]) -> list[Crossing]:
        ids = [row.account_id for row in claimed]
        async with self.db.read() as conn:
            found = {
                r.id: r
                for r in (
                    await conn.execute(
                        select(
                            accounts.c.id, accounts.c.name, accounts.c.balance, accounts.c.held,
                            users.c.email,
                        )
                        .select_from(accounts.outerjoin(users, users.c.account_id == accounts.c.id))
                        .where(accounts.c.id.in_(ids))
                    )
                ).all()
            }  # fmt: skip
        return [
            Crossing(
                row.account_id,
                found[row.account_id].name,
                int(row.threshold),
                int(found[row.account_id].balance),
                int(found[row.account_id].held),
                found[row.account_id].email if row.notify_email else None,
                row.webhook_url,
            )
            for row in claimed
            if row.account_id in found
        ]

    async def _send(self, crossing: Crossing, now: datetime) -> None:
        log.warning(
            "account %s is below its alert threshold: US$%s available, threshold US$%s",
            crossing.account,
            nano_to_usd(crossing.available),
            nano_to_usd(crossing.threshold),
        )
        if crossing.webhook_url is not None:
            url, payload = crossing.webhook_url, crossing.payload(now)
            await self._retried(
                "webhook",
                crossing,
                lambda: post_json(url, payload, self.policy, self.resolver),
            )
        if crossing.email is not None:
            message = self._email(crossing, crossing.email)
            if message is None:
                log.warning(
                    "no SMTP configured (MINITOOLAI_SMTP_URL): the low-balance alert of %s "
                    "was not emailed",
                    crossing.account,
                )
            else:
                await self._retried("email", crossing, lambda: self.mailer.deliver(message))

    def _email(self, crossing: Crossing, to: str) -> EmailMessage | None:
        if self.mailer.target is None:
            return None
        message = EmailMessage()
        message["From"] = self.mailer.target.sender
        message["To"] = to
        message["Subject"] = "Your MiniToolAI balance is low"
        top_up = f"\n\nTop up at {self.base_url}/topup" if self.base_url else ""
        message.set_content(
            f"The available balance of your account {crossing.account} is "
            f"US${nano_to_usd(crossing.available)}, below your alert threshold of "
            f"US${nano_to_usd(crossing.threshold)}.{top_up}\n\n"
            "You will not hear about this again until the balance is back above the threshold."
        )
        return message

    async def _retried(
        self, what: str, crossing: Crossing, send: Callable[[], Awaitable[Any]]
    ) -> bool:
        for attempt in range(1, self.attempts + 1):
            try:
                await send()
            except WebhookRefused as exc:  # the address is not allowed: retrying cannot help
                log.error(
                    "low-balance %s for %s refused: %s",
                    what,
                    crossing.account,
                    exc.message,
                )
                return False
            except (
                OSError,
                TimeoutError,
                smtplib.SMTPException,
                WebhookFailed,
            ) as exc:
                log.warning(
                    "low-balance %s for %s failed (attempt %d of %d): %s",
                    what,
                    crossing.account,
                    attempt,
                    self.attempts,
                    exc or type(exc).__name__,
                )
            except Exception:  # never let one message stop the loop
                log.exception("low-balance %s for %s failed", what, crossing.account)
                return False
            else:
                log.info("low-balance %s sent for %s", what, crossing.account)
                return True
            if attempt < self.attempts:
                await asyncio.sleep(self.retry_delay_s * 2 ** (attempt - 1))
        log.error(
            "low-balance %s for %s not sent after %d attempts",
            what,
            crossing.account,
            self.attempts,
        )
        return False
