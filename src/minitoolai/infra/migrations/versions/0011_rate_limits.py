"""rate limits: each key's and each account's own rates (NULL: the configured default)

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

#: requests, tokens and images per minute, and requests in flight (docs/limits.md)
_COLUMNS = ("limit_rpm", "limit_tpm", "limit_ipm", "limit_max_concurrent")
_TABLES = ("api_keys", "accounts")


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            for column in _COLUMNS:
                batch.add_column(sa.Column(column, sa.Integer(), nullable=True))


def downgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            for column in _COLUMNS:
                batch.drop_column(column)
