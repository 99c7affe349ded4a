"""payments: card top-up orders (Stripe Checkout) and the Stripe events applied to them

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payment_orders",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("stripe_session_id", sa.String(length=200), nullable=True),
        sa.Column("payment_intent_id", sa.String(length=200), nullable=True),
        sa.Column("entry_id", sa.Integer(), nullable=True),
        sa.Column("refunded_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("disputed_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("taken_back", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("shortfall", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount > 0 AND amount_minor > 0", name="ck_payment_orders_positive"),
        sa.CheckConstraint(
            "(status = 'created') = (entry_id IS NULL)", name="ck_payment_orders_paid_once"
        ),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.ForeignKeyConstraint(["entry_id"], ["ledger_entries.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("stripe_session_id"),
        sa.UniqueConstraint("payment_intent_id"),
        sa.UniqueConstraint("entry_id"),
    )
    op.create_index("ix_payment_orders_account_id", "payment_orders", ["account_id"])
    op.create_table(
        "payment_events",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["payment_orders.id"]),
        sa.ForeignKeyConstraint(["entry_id"], ["ledger_entries.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("entry_id"),
    )
    op.create_index("ix_payment_events_order_id", "payment_events", ["order_id"])


def downgrade() -> None:
    op.drop_index("ix_payment_events_order_id", table_name="payment_events")
    op.drop_table("payment_events")
    op.drop_index("ix_payment_orders_account_id", table_name="payment_orders")
    op.drop_table("payment_orders")
