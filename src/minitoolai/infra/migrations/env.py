"""Alembic environment: runs on the connection the app hands it (see ``infra.migrate``)."""

from __future__ import annotations

from alembic import context

from minitoolai.infra.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only through ``minitoolai.infra.migrate``
    raise RuntimeError("run migrations through minitoolai.infra.migrate.upgrade()")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
