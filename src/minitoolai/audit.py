"""The audit log: one row for every admin action, whichever door it came through.

The doors are the console (the actor is the admin's email), the CLI (``cli``) and the admin API
(``admin-api``). Each door records its own actions after they succeed (docs/design.md lists
which call writes each), so an action is written once. Rows are never changed or deleted here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select

from minitoolai.clock import as_utc, utcnow
from minitoolai.infra.db import Database
from minitoolai.infra.tables import audit_log

#: the doors whose actors are not people
CLI = "cli"
ADMIN_API = "admin-api"
#: what a listing shows at most
MAX_LISTING = 500


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    created_at: datetime
    actor: str
    action: str
    target: str | None
    details: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "object": "audit_entry",
            "id": self.id,
            "created_at": as_utc(self.created_at).isoformat(),
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "details": self.details,
        }


def _clip(text: str | None, limit: int) -> str | None:
    """What the row keeps of a name: printable (no NUL reaches PostgreSQL) and bounded."""
    if text is None:
        return None
    return "".join(ch if ch.isprintable() else "?" for ch in text)[:limit]


class AuditLog:
    def __init__(self, db: Database, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.clock = clock

    async def record(
        self, actor: str, action: str, target: str | None, details: dict[str, Any] | None = None
    ) -> None:
        """Keep that ``actor`` did ``action`` to ``target``. ``details`` is plain JSON and never
        holds a secret (no key, no code: their prefixes or counts at most)."""
        async with self.db.write() as conn:
            await conn.execute(
                insert(audit_log).values(
                    created_at=self.clock(),
                    actor=_clip(actor, 254) or "?",
                    action=_clip(action, 64) or "?",
                    target=_clip(target, 254),
                    details=details or {},
                )
            )

    async def entries(
        self, *, action: str | None = None, actor: str | None = None, limit: int = 100
    ) -> list[AuditEntry]:
        """The newest rows first, optionally only one action's or one actor's."""
        if any(v is not None and not v.isprintable() for v in (action, actor)):
            return []  # no row has such a name (and NUL breaks PostgreSQL)
        query = select(audit_log).order_by(audit_log.c.id.desc())
        if action:
            query = query.where(audit_log.c.action == action)
        if actor:
            query = query.where(audit_log.c.actor == actor)
        query = query.limit(max(1, min(limit, MAX_LISTING)))
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [
            AuditEntry(
                int(r.id), as_utc(r.created_at), r.actor, r.action, r.target, dict(r.details or {})
            )
            for r in rows
        ]

    async def actions(self) -> list[str]:
        """Every action name the log holds (for the console's filter)."""
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    select(audit_log.c.action).distinct().order_by(audit_log.c.action)
                )
            ).all()
        return [str(r[0]) for r in rows]
