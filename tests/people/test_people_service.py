"""People on both databases: sign-up makes an account, log-in, sessions, password resets."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from minitoolai.accounts.service import AccountService
from minitoolai.clock import utcnow
from minitoolai.errors import Conflict, InvalidRequest
from minitoolai.infra.db import Database
from minitoolai.infra.tables import password_resets, users, web_sessions
from minitoolai.ledger.service import Ledger
from minitoolai.people import passwords
from minitoolai.people.passwords import verify_password
from minitoolai.people.service import PeopleService
from minitoolai.people.tokens import hash_token
from tests.conftest import unique

PASSWORD = "a long enough password"


@pytest.fixture
def people(db: Database) -> PeopleService:
    return PeopleService(db, AccountService(db, Ledger(db)))


def email() -> str:
    return unique("person") + "@Example.com"


async def test_sign_up_makes_an_account_with_nothing_in_it(people: PeopleService) -> None:
    address = email()
    person, key = await people.create(address, PASSWORD)
    assert person.email == address.lower() and person.role == "customer"
    assert key is not None and key.startswith("mtai-")
    account = await people.accounts.get(person.account_name)
    assert (account.id, account.balance, account.held) == (person.account_id, 0, 0)
    async with people.db.read() as conn:
        stored = (
            await conn.execute(select(users.c.password_hash).where(users.c.id == person.id))
        ).scalar_one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert verify_password(stored, PASSWORD)


async def test_one_login_per_email_and_per_account(people: PeopleService) -> None:
    address = email()
    person, _ = await people.create(address, PASSWORD)
    with pytest.raises(Conflict):
        await people.create(address.upper(), PASSWORD)
    with pytest.raises(Conflict):  # the account has a login already
        await people.create(email(), PASSWORD, account=person.account_name)


async def test_an_account_made_by_the_operator_can_be_given_a_login(people: PeopleService) -> None:
    account, _ = await people.accounts.create(unique("cli-made"))
    person, key = await people.create(email(), PASSWORD, role="admin", account=account.name)
    assert key is None and person.account_id == account.id and person.is_admin


@pytest.mark.parametrize("bad", ["", "no-at-sign", "two@@example.com", "a@b", "sp ace@example.com"])
async def test_an_email_must_look_like_one(people: PeopleService, bad: str) -> None:
    with pytest.raises(InvalidRequest):
        await people.create(bad, PASSWORD)


async def test_a_short_password_is_refused_and_nothing_is_made(people: PeopleService) -> None:
    address = email()
    with pytest.raises(InvalidRequest):
        await people.create(address, "short")
    with pytest.raises(Exception):  # noqa: B017 - no person (NotFound) and no account
        await people.get(address)


async def test_log_in_with_the_right_password_only(people: PeopleService) -> None:
    address = email()
    person, _ = await people.create(address, PASSWORD)
    assert await people.login(address.upper(), PASSWORD) == person
    assert await people.login(address, PASSWORD + "x") is None
    assert await people.login("nobody-" + address, PASSWORD) is None
    assert await people.login("not an email", PASSWORD) is None


async def test_a_session_is_found_by_its_token_until_it_ends(people: PeopleService) -> None:
    person, _ = await people.create(email(), PASSWORD)
    token, opened = await people.open_session(person)
    found = await people.session(token)
    assert found is not None and found.person == person and found.csrf_token == opened.csrf_token
    async with people.db.read() as conn:
        hashes = (
            (
                await conn.execute(
                    select(web_sessions.c.token_hash).where(web_sessions.c.user_id == person.id)
                )
            )
            .scalars()
            .all()
        )
    assert hashes == [hash_token(token)]  # only the hash is kept
    other, _ = await people.open_session(person)
    assert other != token and (await people.session(other)).csrf_token != opened.csrf_token  # type: ignore[union-attr]
    await people.close_session(token)
    assert await people.session(token) is None
    assert await people.session(other) is not None
    assert await people.session("made-up") is None and await people.session(None) is None


async def test_an_expired_session_is_no_session(people: PeopleService) -> None:
    person, _ = await people.create(email(), PASSWORD)
    token, _ = await people.open_session(person)
    async with people.db.write() as conn:
        await conn.execute(
            update(web_sessions)
            .where(web_sessions.c.token_hash == hash_token(token))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert await people.session(token) is None


async def test_a_reset_token_works_once_and_ends_every_session(people: PeopleService) -> None:
    address = email()
    person, _ = await people.create(address, PASSWORD)
    session_token, _ = await people.open_session(person)
    made = await people.start_reset(address)
    assert made is not None
    _, token = made
    assert await people.reset_is_valid(token)
    with pytest.raises(InvalidRequest):  # too short: the token is not used up
        await people.finish_reset(token, "short")
    assert await people.reset_is_valid(token)
    assert await people.finish_reset(token, "the new password!") == person
    assert await people.login(address, "the new password!") == person
    assert await people.login(address, PASSWORD) is None
    assert await people.session(session_token) is None
    assert not await people.reset_is_valid(token)
    with pytest.raises(InvalidRequest):
        await people.finish_reset(token, "another password")
    assert await people.login(address, "another password") is None


async def test_racing_resets_with_one_token_set_one_password(people: PeopleService) -> None:
    address = email()
    await people.create(address, PASSWORD)
    made = await people.start_reset(address)
    assert made is not None
    outcomes = await asyncio.gather(
        *(people.finish_reset(made[1], f"password number {i}") for i in range(5)),
        return_exceptions=True,
    )
    assert sum(not isinstance(o, BaseException) for o in outcomes) == 1
    assert all(isinstance(o, InvalidRequest) for o in outcomes if isinstance(o, BaseException))


async def test_an_expired_reset_token_is_refused(people: PeopleService) -> None:
    address = email()
    await people.create(address, PASSWORD)
    made = await people.start_reset(address)
    assert made is not None
    async with people.db.write() as conn:
        await conn.execute(
            update(password_resets)
            .where(password_resets.c.token_hash == hash_token(made[1]))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert not await people.reset_is_valid(made[1])
    with pytest.raises(InvalidRequest):
        await people.finish_reset(made[1], "the new password!")
    assert await people.login(address, PASSWORD) is not None


async def test_no_reset_for_an_unknown_email(people: PeopleService) -> None:
    assert await people.start_reset(email()) is None
    assert await people.start_reset("not an email") is None


async def test_a_flood_of_log_ins_hashes_a_few_at_a_time(
    people: PeopleService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each argon2 check costs a core and 64 MiB: 24 log-ins at once (wrong passwords and
    unknown emails alike) run at most ``HASHES_AT_ONCE`` checks together, not one per thread of
    the default executor, and all get their answer."""
    address = email()
    await people.create(address, PASSWORD)
    running = peak = 0
    lock = threading.Lock()
    verify = passwords.verify_password

    def counting(stored: str | None, password: str) -> bool:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        try:
            return verify(stored, password)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(passwords, "verify_password", counting)
    attempts = [(address, "wrong password") for _ in range(12)]
    attempts += [(email(), PASSWORD) for _ in range(11)] + [(address, PASSWORD)]
    results = await asyncio.gather(*(people.login(e, p) for e, p in attempts))
    assert [r is not None for r in results] == [False] * 23 + [True]
    assert 1 <= peak <= passwords.HASHES_AT_ONCE
