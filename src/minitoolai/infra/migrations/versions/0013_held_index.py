"""held index: the sweeper's index holds the live holds only

Revision ID: 0013
Revises: 0012

``ix_charges_status_expires`` (status, expires_at) held an entry for every charge ever made,
and a settle moved its entry from ``held`` to ``settled`` (a second index page written per
request, and on PostgreSQL a second index tuple). The sweeper and the renewals only ever ask for
``status = 'held'``: a partial index on ``expires_at`` keeps just the live holds, a few rows
however old the database.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_HELD = "status = 'held'"


def upgrade() -> None:
    op.create_index(
        "ix_charges_held_expires",
        "charges",
        ["expires_at"],
        postgresql_where=sa.text(_HELD),
        sqlite_where=sa.text(_HELD),
    )
    op.drop_index("ix_charges_status_expires", table_name="charges")


def downgrade() -> None:
    op.create_index("ix_charges_status_expires", "charges", ["status", "expires_at"])
    op.drop_index("ix_charges_held_expires", table_name="charges")
