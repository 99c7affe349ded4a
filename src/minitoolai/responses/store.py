"""The stored responses (``infra.tables.responses``): one row per kept response, read and
deleted only by the account that made it (another account's id reads as absent)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite

from minitoolai.clock import utcnow
from minitoolai.infra.db import Database
from minitoolai.infra.tables import responses


class ResponseStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def save(
        self, account_id: int, body: dict[str, Any], conversation: list[dict[str, Any]]
    ) -> None:
        """Keep a finished response; an idempotent replay of it (the same id) keeps nothing
        new."""
        dialect: Any = sqlite if self.db.is_sqlite else postgresql
        statement = (
            dialect.insert(responses)
            .values(
                id=body["id"],
                account_id=account_id,
                model=body["model"],
                created_at=utcnow(),
                body=body,
                conversation=conversation,
            )
            .on_conflict_do_nothing(index_elements=["id"])
        )
        async with self.db.write() as conn:
            await conn.execute(statement)

    async def body(self, account_id: int, response_id: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = await self._column(responses.c.body, account_id, response_id)
        return found

    async def conversation(self, account_id: int, response_id: str) -> list[dict[str, Any]] | None:
        found: list[dict[str, Any]] | None = await self._column(
            responses.c.conversation, account_id, response_id
        )
        return found

    async def _column(self, column: Any, account_id: int, response_id: str) -> Any:
        if not _may_exist(response_id):
            return None
        query = select(column).where(
            responses.c.id == response_id, responses.c.account_id == account_id
        )
        async with self.db.read() as conn:
            return (await conn.execute(query)).scalar_one_or_none()

    async def delete(self, account_id: int, response_id: str) -> bool:
        """Whether there was such a response of this account to delete."""
        if not _may_exist(response_id):
            return False
        statement = delete(responses).where(
            responses.c.id == response_id, responses.c.account_id == account_id
        )
        async with self.db.write() as conn:
            return bool((await conn.execute(statement)).rowcount)


def _may_exist(response_id: str) -> bool:
    """Whether an id could be one of ours (``resp_`` and URL-safe base64): anything else (a
    NUL byte PostgreSQL refuses, a kilobyte of text) is simply absent, without a query."""
    return len(response_id) <= 64 and response_id.isascii() and response_id.isprintable()
