"""redeem codes: batches of single-use codes, kept as hashes, each naming the entry that paid it

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "code_batches",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount > 0", name="ck_code_batches_amount_positive"),
        sa.CheckConstraint("count > 0", name="ck_code_batches_count_positive"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "redeem_codes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("batch_id", sa.String(length=40), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("last4", sa.String(length=4), nullable=False),
        sa.Column("redeemed_by", sa.Integer(), nullable=True),
        sa.Column("redeemed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("entry_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "(redeemed_at IS NULL) = (entry_id IS NULL)", name="ck_redeem_codes_paid_once"
        ),
        sa.ForeignKeyConstraint(["batch_id"], ["code_batches.id"]),
        sa.ForeignKeyConstraint(["redeemed_by"], ["accounts.id"]),
        sa.ForeignKeyConstraint(["entry_id"], ["ledger_entries.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code_hash"),
        sa.UniqueConstraint("entry_id"),
    )
    op.create_index("ix_redeem_codes_batch_id", "redeem_codes", ["batch_id"])


def downgrade() -> None:
    op.drop_index("ix_redeem_codes_batch_id", table_name="redeem_codes")
    op.drop_table("redeem_codes")
    op.drop_table("code_batches")
