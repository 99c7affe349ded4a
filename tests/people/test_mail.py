"""Reset emails through a real SMTP conversation (a small SMTP server on loopback), and the
log fallback when no server is configured."""

from __future__ import annotations

import logging
import socketserver
import threading
from collections.abc import Iterator
from email import message_from_bytes

import pytest

from minitoolai.accounts.service import AccountService
from minitoolai.infra.db import Database
from minitoolai.ledger.service import Ledger
from minitoolai.people.mail import Mailer, SmtpTarget
from minitoolai.people.service import PeopleService
from tests.conftest import unique


class _Smtp(socketserver.StreamRequestHandler):
    """Just enough of RFC 5321 for smtplib: EHLO, MAIL, RCPT, DATA, QUIT."""

    def handle(self) -> None:
        inbox: list[bytes] = self.server.inbox  # type: ignore[attr-defined]
        self.wfile.write(b"220 test ESMTP\r\n")
        while line := self.rfile.readline():
            verb = line.strip().split(b" ")[0].upper()
            if verb == b"EHLO":
                self.wfile.write(b"250 test\r\n")
            elif verb == b"DATA":
                self.wfile.write(b"354 go on\r\n")
                body = b""
                while (part := self.rfile.readline()) not in (b".\r\n", b""):
                    body += part
                inbox.append(body)
                self.wfile.write(b"250 kept\r\n")
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 ok\r\n")


@pytest.fixture
def smtp() -> Iterator[tuple[str, list[bytes]]]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Smtp)
    server.inbox = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"smtp://127.0.0.1:{server.server_address[1]}?from=billing@shop.test", server.inbox  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()


def test_the_smtp_url_forms() -> None:
    target = SmtpTarget.parse("smtps://me%40x.io:p%3Ass@mail.x.io?from=a@x.io")
    assert (target.scheme, target.host, target.port) == ("smtps", "mail.x.io", 465)
    assert (target.username, target.password, target.sender) == ("me@x.io", "p:ss", "a@x.io")
    assert SmtpTarget.parse("smtp+starttls://mail.x.io").port == 587
    with pytest.raises(ValueError):
        SmtpTarget.parse("http://mail.x.io")


async def test_a_reset_link_is_emailed(sqlite_db: Database, smtp: tuple[str, list[bytes]]) -> None:
    url, inbox = smtp
    people = PeopleService(
        sqlite_db, AccountService(sqlite_db, Ledger(sqlite_db)), mailer=Mailer(url)
    )
    email = unique("mail") + "@shop.test"
    await people.create(email, "a long enough password")
    await people.send_reset("nobody-" + email, "https://shop.test")
    assert inbox == []
    await people.send_reset(email, "https://shop.test")
    assert len(inbox) == 1
    message = message_from_bytes(inbox[0])
    assert message["To"] == email and message["From"] == "billing@shop.test"
    link = next(w for w in message.get_payload().split() if w.startswith("https://shop.test/"))
    token = link.rsplit("/", 1)[1]
    assert await people.reset_is_valid(token)


async def test_without_smtp_the_link_is_logged(
    sqlite_db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    people = PeopleService(sqlite_db, AccountService(sqlite_db, Ledger(sqlite_db)))
    email = unique("log") + "@shop.test"
    await people.create(email, "a long enough password")
    with caplog.at_level(logging.WARNING, logger="minitoolai.people.mail"):
        await people.send_reset(email, "http://127.0.0.1:8000")
    assert "http://127.0.0.1:8000/password-reset/" in caplog.text and email in caplog.text


async def test_an_unreachable_server_is_logged_not_raised(
    sqlite_db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    mailer = Mailer("smtp://127.0.0.1:1", timeout_s=2)
    with caplog.at_level(logging.ERROR, logger="minitoolai.people.mail"):
        await mailer.send("a@b.io", "hello", "body", link="x")
    assert "could not send" in caplog.text
