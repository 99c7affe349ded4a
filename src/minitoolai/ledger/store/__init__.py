"""The ledger's statements, one store per database (``base.LedgerStore`` is their interface).

``hold`` and ``finish`` run on every charged request, so each is one round trip and none goes
through an ORM layer: on PostgreSQL a single statement of data-modifying CTEs sent through
asyncpg, on SQLite one transaction run inline on the event loop. The other steps follow the same
two patterns, so the two stores are the only SQL the ledger has.
"""

from __future__ import annotations

from minitoolai.infra.db import Database
from minitoolai.ledger.store.base import (
    CodeCredit,
    CodeRefusal,
    Entry,
    Finish,
    Finished,
    HoldOutcome,
    KeyedCharge,
    LateSettled,
    LedgerStore,
    NewCharge,
    UsageRow,
)
from minitoolai.ledger.store.postgres import PostgresLedgerStore
from minitoolai.ledger.store.sqlite import SqliteLedgerStore

__all__ = [
    "CodeCredit",
    "CodeRefusal",
    "Entry",
    "Finish",
    "Finished",
    "HoldOutcome",
    "KeyedCharge",
    "LateSettled",
    "LedgerStore",
    "NewCharge",
    "UsageRow",
    "store_for",
]


def store_for(db: Database) -> LedgerStore:
    """The store for ``db``'s database; on SQLite it queues behind ``db``'s write lock."""
    if db.sqlite_path is not None:
        return SqliteLedgerStore(db.sqlite_path, db.write_lock)
    return PostgresLedgerStore(db.url, db.pool_size)
