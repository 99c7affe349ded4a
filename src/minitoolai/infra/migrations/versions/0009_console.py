"""console: the audit log of admin actions, suspended accounts, price overrides

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=254), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=254), nullable=True),
        sa.Column("details", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_log_action_id", "audit_log", ["action", "id"])
    op.create_index("ix_audit_log_actor_id", "audit_log", ["actor", "id"])
    op.add_column(
        "accounts",
        sa.Column("suspended", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "price_overrides",
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("input_per_m", sa.BigInteger(), nullable=True),
        sa.Column("output_per_m", sa.BigInteger(), nullable=True),
        sa.Column("per_image", sa.BigInteger(), nullable=True),
        sa.Column("per_m_chars", sa.BigInteger(), nullable=True),
        sa.Column("updated_by", sa.String(length=254), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("model"),
    )


def downgrade() -> None:
    op.drop_table("price_overrides")
    op.drop_column("accounts", "suspended")  # SQLite >= 3.35 drops a column in place
    op.drop_index("ix_audit_log_actor_id", table_name="audit_log")
    op.drop_index("ix_audit_log_action_id", table_name="audit_log")
    op.drop_table("audit_log")
