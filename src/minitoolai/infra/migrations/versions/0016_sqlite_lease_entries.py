"""lease entries on SQLite: a lease's charge has many entries of one kind

Revision ID: 0016
Revises: 0015

SQLite's ledger now holds leases too (``ledger.leases``): as on PostgreSQL since 0014, the
unique (charge, kind) constraint keeps a request's hold, settle, release and refund to one each,
and lets a lease's ``grow``, ``draw`` and ``return`` entries repeat (a partial unique index).
SQLite cannot drop a constraint of a table: the table is rebuilt (copied whole, once).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from minitoolai.infra.tables import ONCE_KINDS

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("ledger_entries", recreate="always") as batch:
        batch.drop_constraint("uq_ledger_charge_kind", type_="unique")
    op.create_index(
        "uq_ledger_charge_kind",
        "ledger_entries",
        ["charge_id", "kind"],
        unique=True,
        sqlite_where=sa.text(ONCE_KINDS),
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.drop_index("uq_ledger_charge_kind", table_name="ledger_entries")
    with op.batch_alter_table("ledger_entries", recreate="always") as batch:
        batch.create_unique_constraint("uq_ledger_charge_kind", ["charge_id", "kind"])
