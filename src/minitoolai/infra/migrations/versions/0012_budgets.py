"""budgets: daily, monthly and total spend caps per key and per account, and their counters

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

#: the caps, nullable BIGINT nano-dollars (NULL: no cap), on both keys and accounts
CAPS = ("daily_budget", "monthly_budget", "total_budget")


def upgrade() -> None:
    for table in ("api_keys", "accounts"):
        for column in CAPS:
            op.add_column(table, sa.Column(column, sa.BigInteger(), nullable=True))
    # the UTC day a budgeted hold was taken in: its settle moves that period's counters
    op.add_column("charges", sa.Column("budget_period", sa.String(10), nullable=True))
    op.create_table(
        "budget_spend",
        sa.Column("scope", sa.String(8), nullable=False),
        sa.Column("scope_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(16), nullable=False),
        sa.Column("spent", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("held", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("cap", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("held >= 0", name="ck_budget_spend_held_nonneg"),
        sa.PrimaryKeyConstraint("scope", "scope_id", "period"),
    )


def downgrade() -> None:
    op.drop_table("budget_spend")
    op.drop_column("charges", "budget_period")  # SQLite >= 3.35 drops a column in place
    for table in ("accounts", "api_keys"):
        for column in CAPS:
            op.drop_column(table, column)
