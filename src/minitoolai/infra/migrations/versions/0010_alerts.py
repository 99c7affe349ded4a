"""alerts: a low-balance alert per account; an index for exact spending sums

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

#: ``Ledger.spent`` sums the costs of an account's settled charges since a time: this partial
#: index holds exactly those rows, ordered by account and time, so the sum is one index range
#: scan, however many released or refunded charges the account has.
_SETTLED = "status = 'settled'"


def upgrade() -> None:
    op.create_table(
        "account_alerts",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("threshold", sa.BigInteger(), nullable=False),
        sa.Column("notify_email", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("webhook_url", sa.Text(), nullable=True),
        sa.Column("armed", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("alerted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("threshold > 0", name="ck_account_alerts_threshold_positive"),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.PrimaryKeyConstraint("account_id"),
    )
    op.create_index(
        "ix_charges_account_settled",
        "charges",
        ["account_id", "created_at", "cost"],
        postgresql_where=sa.text(_SETTLED),
        sqlite_where=sa.text(_SETTLED),
    )


def downgrade() -> None:
    op.drop_index("ix_charges_account_settled", table_name="charges")
    op.drop_table("account_alerts")
