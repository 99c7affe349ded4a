"""request id: each charge names the HTTP request (``x-request-id``) that made it

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # nullable, no default: older charges, and holds made outside a request, have none
    op.add_column("charges", sa.Column("request_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.drop_column("charges", "request_id")
