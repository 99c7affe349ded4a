"""People and their browser sessions: sign-up, log-in, log-out, password reset.

A person owns one billing account (made with ``AccountService.create`` at sign-up, or an
account the operator made with the CLI and gives a login). Session and reset tokens are random
and stored only as hashes (``people.tokens``); a new session token is made at every log-in, so a
token planted before log-in never becomes a signed-in one (no session fixation). Money is not
touched here: balances are the ledger's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from minitoolai.accounts.service import AccountService
from minitoolai.clock import as_utc, utcnow
from minitoolai.errors import Conflict, InvalidRequest, NotFound
from minitoolai.infra.db import Database
from minitoolai.infra.tables import accounts, password_resets, users, web_sessions
from minitoolai.people.mail import Mailer
from minitoolai.people.passwords import check_strength, hashed, needs_rehash, verified
from minitoolai.people.throttle import LoginThrottle
from minitoolai.people.tokens import hash_token, new_token

ROLES = ("customer", "admin")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True, slots=True)
class Person:
    id: int
    email: str
    role: str
    account_id: int
    account_name: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True, slots=True)
class WebSession:
    person: Person
    csrf_token: str
    expires_at: datetime


def normal_email(email: str) -> str:
    """The one spelling an address is stored and looked up by; InvalidRequest if it is none."""
    email = email.strip().lower()
    if len(email) > 254 or not email.isprintable() or not _EMAIL.match(email):
        raise InvalidRequest("enter a valid email address", param="email")
    return email


_PERSON_COLUMNS = (
    users.c.id,
    users.c.email,
    users.c.role,
    users.c.account_id,
    users.c.password_hash,
    accounts.c.name.label("account_name"),
)


class PeopleService:
    def __init__(
        self,
        db: Database,
        accounts: AccountService,
        *,
        session_ttl_s: float = 14 * 86_400,
        reset_ttl_s: float = 3_600,
        mailer: Mailer | None = None,
        throttle: LoginThrottle | None = None,
        signups: LoginThrottle | None = None,
    ) -> None:
        self.db = db
        self.accounts = accounts
        self.session_ttl = timedelta(seconds=session_ttl_s)
        self.reset_ttl = timedelta(seconds=reset_ttl_s)
        self.mailer = mailer or Mailer(None)
        #: failed log-ins per (email, client address), in this process
        self.throttle = throttle or LoginThrottle()
        #: sign-ups made per client address (the email part is empty), in this process
        self.signups = signups or LoginThrottle(max_failures=20, window_s=3_600)

    # -- people ------------------------------------------------------------------------------

    async def create(
        self, email: str, password: str, *, role: str = "customer", account: str | None = None
    ) -> tuple[Person, str | None]:
        """A person with a login. Without ``account``, a new account named by the email is made
        (zero balance) and its first API key returned; with it, that existing account gets the
        login and no key is made."""
        email = normal_email(email)
        check_strength(password)
        if role not in ROLES:
            raise InvalidRequest(f"a role is one of {', '.join(ROLES)}", param="role")
        if await self._find(email) is not None:
            raise Conflict("an account with this email already exists", param="email")
        password_hash = await hashed(password)
        key: str | None = None
        if account is None:
            made, key = await self.accounts.create(email)
            account_id, account_name = made.id, made.name
        else:
            found = await self.accounts.get(account)
            account_id, account_name = found.id, found.name
        try:
            async with self.db.write() as conn:
                person_id = (
                    await conn.execute(
                        insert(users)
                        .values(
                            email=email,
                            password_hash=password_hash,
                            role=role,
                            account_id=account_id,
                            created_at=utcnow(),
                        )
                        .returning(users.c.id)
                    )
                ).scalar_one()
        except IntegrityError:
            raise Conflict(
                "this email, or this account, already has a login", param="email"
            ) from None
        return Person(person_id, email, role, account_id, account_name), key

    async def get(self, email: str) -> Person:
        row = await self._find(normal_email(email))
        if row is None:
            raise NotFound("no person with this email")
        return _person(row)

    async def login(self, email: str, password: str) -> Person | None:
        """The person whose password this is, or None. An unknown email costs one hash check
        too, so timing does not tell which emails have logins."""
        try:
            row = await self._find(normal_email(email))
        except InvalidRequest:
            row = None
        stored = row.password_hash if row is not None else None  # None: the dummy hash
        ok = await verified(stored, password)
        if row is None or stored is None or not ok:
            return None
        if needs_rehash(stored):  # argon2's parameters were raised since this hash was made
            await self._set_password(row.id, password)
        return _person(row)

    # -- sessions ----------------------------------------------------------------------------

    async def open_session(self, person: Person) -> tuple[str, WebSession]:
        """A new session (a new token: never one the browser brought). Returns the token for
        the cookie, and the session."""
        token, csrf = new_token(), new_token()
        now = utcnow()
        expires = now + self.session_ttl
        async with self.db.write() as conn:
            await conn.execute(
                delete(web_sessions).where(
                    web_sessions.c.user_id == person.id, web_sessions.c.expires_at < now
                )
            )
            await conn.execute(
                insert(web_sessions).values(
                    token_hash=hash_token(token),
                    user_id=person.id,
                    csrf_token=csrf,
                    created_at=now,
                    expires_at=expires,
                )
            )
        return token, WebSession(person, csrf, expires)

    async def session(self, token: str | None) -> WebSession | None:
        if not token or len(token) > 100 or not token.isascii():
            return None
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(*_PERSON_COLUMNS, web_sessions.c.csrf_token, web_sessions.c.expires_at)
                    .select_from(
                        web_sessions.join(users, users.c.id == web_sessions.c.user_id).join(
                            accounts, accounts.c.id == users.c.account_id
                        )
                    )
                    .where(web_sessions.c.token_hash == hash_token(token))
                )
            ).first()
        if row is None or as_utc(row.expires_at) <= utcnow():
            return None
        return WebSession(_person(row), row.csrf_token, as_utc(row.expires_at))

    async def close_session(self, token: str | None) -> None:
        if not token or len(token) > 100 or not token.isascii():
            return
        async with self.db.write() as conn:
            await conn.execute(
                delete(web_sessions).where(web_sessions.c.token_hash == hash_token(token))
            )

    # -- password reset ----------------------------------------------------------------------

    async def start_reset(self, email: str) -> tuple[Person, str] | None:
        """A single-use reset token for this email's person, or None if there is none."""
        try:
            row = await self._find(normal_email(email))
        except InvalidRequest:
            return None
        if row is None:
            return None
        token = new_token()
        now = utcnow()
        async with self.db.write() as conn:
            await conn.execute(
                insert(password_resets).values(
                    token_hash=hash_token(token),
                    user_id=row.id,
                    created_at=now,
                    expires_at=now + self.reset_ttl,
                )
            )
        return _person(row), token

    async def send_reset(self, email: str, base_url: str) -> None:
        """Email a reset link if this email has a login (else nothing: the caller answers the
        same either way, so nobody learns which emails have logins)."""
        made = await self.start_reset(email)
        if made is None:
            return
        person, token = made
        link = f"{base_url}/password-reset/{token}"
        minutes = int(self.reset_ttl.total_seconds() // 60)
        body = (
            "Someone asked to reset the password of your MiniToolAI login.\n\n"
            f"To choose a new password, open this link within {minutes} minutes:\n{link}\n\n"
            "If it was not you, ignore this email: your password stays as it is.\n"
        )
        await self.mailer.send(person.email, "Reset your MiniToolAI password", body, link=link)

    async def reset_is_valid(self, token: str) -> bool:
        """Whether the link's page should offer the form (the POST decides, atomically)."""
        if not token or len(token) > 100 or not token.isascii():
            return False
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(password_resets.c.expires_at, password_resets.c.used_at).where(
                        password_resets.c.token_hash == hash_token(token)
                    )
                )
            ).first()
        return row is not None and row.used_at is None and as_utc(row.expires_at) > utcnow()

    async def finish_reset(self, token: str, password: str) -> Person:
        """Set a new password with a reset token, which is used up whatever happens next; every
        session of the person ends."""
        check_strength(password)
        invalid = InvalidRequest("this reset link is invalid, used or expired", param="token")
        if not token or len(token) > 100 or not token.isascii():
            raise invalid
        password_hash = await hashed(password)
        now = utcnow()
        async with self.db.write() as conn:
            # one conditional UPDATE: two requests racing with one token cannot both win
            used = (
                await conn.execute(
                    update(password_resets)
                    .where(
                        password_resets.c.token_hash == hash_token(token),
                        password_resets.c.used_at.is_(None),
                    )
                    .values(used_at=now)
                    .returning(password_resets.c.user_id, password_resets.c.expires_at)
                )
            ).first()
            if used is None or as_utc(used.expires_at) <= now:
                raise invalid  # rolls the transaction back: an expired token stays unused
            await conn.execute(
                update(users).where(users.c.id == used.user_id).values(password_hash=password_hash)
            )
            await conn.execute(delete(web_sessions).where(web_sessions.c.user_id == used.user_id))
            row = (
                await conn.execute(
                    select(*_PERSON_COLUMNS)
                    .select_from(users.join(accounts, accounts.c.id == users.c.account_id))
                    .where(users.c.id == used.user_id)
                )
            ).one()
        return _person(row)

    # -- helpers -----------------------------------------------------------------------------

    async def _find(self, email: str) -> Any:
        async with self.db.read() as conn:
            return (
                await conn.execute(
                    select(*_PERSON_COLUMNS)
                    .select_from(users.join(accounts, accounts.c.id == users.c.account_id))
                    .where(users.c.email == email)
                )
            ).first()

    async def _set_password(self, person_id: int, password: str) -> None:
        password_hash = await hashed(password)
        async with self.db.write() as conn:
            await conn.execute(
                update(users).where(users.c.id == person_id).values(password_hash=password_hash)
            )


def _person(row: Any) -> Person:
    return Person(row.id, row.email, row.role, row.account_id, row.account_name)
