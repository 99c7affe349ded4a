"""Sending a person a link: through SMTP when ``MINITOOLAI_SMTP_URL`` is set, else to the log.

The URL names the server and how to reach it: ``smtp://host:25`` (plain), ``smtp+starttls://
user:pass@host:587`` or ``smtps://user:pass@host:465``, with ``?from=address`` for the sender.
smtplib blocks, so a message is sent in a thread; a failure is logged, never shown to the
person (the reset page answers the same whether or not an email exists or was sent).
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger("minitoolai.people.mail")

_SCHEMES = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    scheme: str
    host: str
    port: int
    username: str | None
    password: str | None
    sender: str

    @classmethod
    def parse(cls, url: str) -> SmtpTarget:
        parts = urlsplit(url)
        if parts.scheme not in _SCHEMES or not parts.hostname:
            raise ValueError("MINITOOLAI_SMTP_URL must be smtp://, smtp+starttls:// or smtps://")
        sender = parse_qs(parts.query).get("from", [f"minitoolai@{parts.hostname}"])[0]
        return cls(
            parts.scheme,
            parts.hostname,
            parts.port or _SCHEMES[parts.scheme],
            unquote(parts.username) if parts.username else None,
            unquote(parts.password) if parts.password else None,
            sender,
        )


class Mailer:
    def __init__(self, smtp_url: str | None, timeout_s: float = 10.0) -> None:
        self.target = SmtpTarget.parse(smtp_url) if smtp_url else None
        self.timeout_s = timeout_s

    async def send(self, to: str, subject: str, body: str, *, link: str) -> None:
        """Send ``body`` to ``to``; without SMTP, log ``link`` for the operator to hand on."""
        if self.target is None:
            log.warning(
                "no SMTP configured (MINITOOLAI_SMTP_URL); %s for %s: %s", subject, to, link
            )
            return
        message = EmailMessage()
        message["From"] = self.target.sender
        message["To"] = to
        message["Subject"] = subject
        message.set_content(body)
        try:
            await asyncio.to_thread(self._deliver, message)
        except (OSError, smtplib.SMTPException) as exc:
            log.error("could not send %r to %s: %s", subject, to, exc)

    async def deliver(self, message: EmailMessage) -> None:
        """Send ``message`` now, raising ``OSError`` or ``smtplib.SMTPException`` when it could
        not be (for callers that retry, like low-balance alerts). Needs SMTP configured."""
        await asyncio.to_thread(self._deliver, message)

    def _deliver(self, message: EmailMessage) -> None:
        target = self.target
        assert target is not None
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if target.scheme == "smtps":
            smtp = smtplib.SMTP_SSL(
                target.host, target.port, timeout=self.timeout_s, context=context
            )
        else:
            smtp = smtplib.SMTP(target.host, target.port, timeout=self.timeout_s)
        with smtp:
            if target.scheme == "smtp+starttls":
                smtp.starttls(context=context)
            if target.username:
                smtp.login(target.username, target.password or "")
            smtp.send_message(message)
