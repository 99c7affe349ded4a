"""reliability: 64-bit usage counts, idempotency bound to its endpoint and request body

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_COUNTS = ("prompt_tokens", "completion_tokens", "units")


def upgrade() -> None:
    # SQLite's INTEGER is 64-bit and its VARCHAR unbounded: only PostgreSQL needs the types.
    if op.get_bind().dialect.name == "postgresql":
        for column in _COUNTS:
            op.alter_column("charges", column, type_=sa.BigInteger())
        op.alter_column("charges", "idempotency_key", type_=sa.String(length=300))
    op.add_column("charges", sa.Column("request_hash", sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.drop_column("charges", "request_hash")
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("charges", "idempotency_key", type_=sa.String(length=200))
        for column in _COUNTS:
            op.alter_column("charges", column, type_=sa.Integer())
