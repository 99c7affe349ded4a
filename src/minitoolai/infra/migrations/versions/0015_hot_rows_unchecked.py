"""hot rows unchecked: no foreign keys on charges and ledger_entries (PostgreSQL)

Revision ID: 0015
Revises: 0014

A request's settle writes its charge row and two or three ledger entries; PostgreSQL checked
each row's foreign keys (a charge's account and key, an entry's account and charge) with a
query of its own, through the trigger of each constraint: eight per request, 29% of the
database's instructions in a batch of settles (callgrind); without them 495 -> 304 K
instructions per settle in batches of 16, 1,513 -> 1,212 K alone (bench.pg_instructions,
bench/README.md, tenth wave). Every one of those rows is written by a ledger statement that
holds its account's row locked (and writes an entry's charge in the same statement), from an
authenticated key; no row of accounts, keys or charges is ever deleted. What the constraints
guarded is kept by the statements, and checked by the ledger audit of the tests (an entry of a
charge that is not the account's, a charge of another account's key). SQLite keeps them: its
checks are an index lookup in the same process.
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

#: (table, constraint, column, referenced table)
_KEYS = (
    ("charges", "charges_account_id_fkey", "account_id", "accounts"),
    ("charges", "charges_api_key_id_fkey", "api_key_id", "api_keys"),
    ("ledger_entries", "ledger_entries_account_id_fkey", "account_id", "accounts"),
    ("ledger_entries", "ledger_entries_charge_id_fkey", "charge_id", "charges"),
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, name, _, _ in _KEYS:
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, name, column, referenced in _KEYS:
        op.create_foreign_key(name, table, referenced, [column], ["id"])
