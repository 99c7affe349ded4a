"""The ledger audit of the tests (``tests/support/ledger_audit.py``) reports what PostgreSQL's
foreign keys on ``charges`` and ``ledger_entries`` refused before migration 0015: an entry of
a charge that is not the account's, and a charge made with another account's key."""

from __future__ import annotations

from sqlalchemy import text

from minitoolai.accounts.service import AccountService
from minitoolai.clock import utcnow
from minitoolai.infra.db import Database
from minitoolai.ledger.service import Ledger, UsageRecord
from tests.conftest import unique
from tests.support.ledger_audit import _audit
from tests.support.ledgers import OPEN as _open
from tests.support.ledgers import close_ledgers as close_ledgers  # autouse


async def test_the_audit_reports_rows_that_belong_to_no_charge_or_key_of_the_account(
    postgres_db: Database,
) -> None:
    ledger = Ledger(postgres_db)
    _open.append(ledger)
    accounts = AccountService(postgres_db, ledger)
    mine, other = unique("mine"), unique("other")
    account, _ = await accounts.create(mine, 10_000)
    await accounts.create(other, 0)
    hold = await ledger.hold(account.id, 1_000, kind="chat", model="m", durable=False)
    await ledger.settle(hold.charge_id, 400, UsageRecord())
    await ledger.flush()
    assert (await _audit(postgres_db.url, mine)).problems() == []

    other_key = (await accounts.list_keys(other))[0].id
    async with postgres_db.engine.begin() as conn:
        # what no ledger statement writes, and the database no longer refuses
        await conn.execute(
            text(
                "INSERT INTO ledger_entries (account_id, charge_id, kind, amount, held,"
                " created_at) VALUES (:a, 'ch_nowhere', 'hold', 0, 0, :t)"
            ),
            {"a": account.id, "t": utcnow()},
        )
        await conn.execute(
            text("UPDATE charges SET api_key_id = :k WHERE id = :c"),
            {"k": other_key, "c": hold.charge_id},
        )
    problems = (await _audit(postgres_db.url, mine)).problems()
    assert "a hold entry of charge ch_nowhere, not the account's" in problems
    assert f"{hold.charge_id}: charged to key {other_key}, not the account's" in problems
