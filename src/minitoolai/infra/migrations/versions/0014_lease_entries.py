"""lease entries: a lease's charge has many entries of one kind (PostgreSQL)

Revision ID: 0014
Revises: 0013

A lease (``ledger.leases``) is a charge that is grown, drawn on by each of its requests' settles
and partly given back many times: ``grow``, ``draw`` and ``return`` entries repeat on one
charge. The unique (charge, kind) constraint that keeps a request's hold, settle, release and
refund to one each now holds for every other kind only (a partial unique index). SQLite kept
its constraint then (no leases there); 0016 does the same on SQLite.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_ONCE = "kind NOT IN ('grow', 'draw', 'return')"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # room on every page for a new version of its rows: a lease's row is updated by each batch
    # of its settles, and an update that finds no room on its page is not HOT (it adds index
    # entries, and each lookup of the lease then walks every dead one until a vacuum)
    op.execute("ALTER TABLE charges SET (fillfactor = 90)")
    op.drop_constraint("uq_ledger_charge_kind", "ledger_entries", type_="unique")
    op.create_index(
        "uq_ledger_charge_kind",
        "ledger_entries",
        ["charge_id", "kind"],
        unique=True,
        postgresql_where=sa.text(_ONCE),
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE charges RESET (fillfactor)")
    op.drop_index("uq_ledger_charge_kind", table_name="ledger_entries")
    op.create_unique_constraint("uq_ledger_charge_kind", "ledger_entries", ["charge_id", "kind"])
