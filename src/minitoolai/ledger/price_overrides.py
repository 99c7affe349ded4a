"""The operator's price overrides kept in the database (the console edits them).

They apply field by field on top of the config file's ``[prices.<model>]``, which apply on top
of the seed's defaults (``ledger.pricing``). The hot path never reads them: ``PriceTable`` holds
the effective table in memory; this process applies an edit at once, and every process reloads
the rows every ``REFRESH_S`` seconds (the app's lifespan), so other replicas and workers follow
within that.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select

from minitoolai.clock import utcnow
from minitoolai.errors import InvalidRequest
from minitoolai.infra.db import Database
from minitoolai.infra.tables import price_overrides
from minitoolai.ledger.pricing import FIELDS, PriceTable
from minitoolai.ledger.service import check_amount
from minitoolai.money import usd_to_nano

log = logging.getLogger("minitoolai.prices")

#: how often every process reloads the overrides (seconds)
REFRESH_S = 10.0


@dataclass(frozen=True, slots=True)
class Override:
    """One model's overridden fields, in nano-dollars (None: not overridden)."""

    model: str
    input_per_m: int | None = None
    output_per_m: int | None = None
    per_image: int | None = None
    per_m_chars: int | None = None

    def fields(self) -> dict[str, int]:
        return {f: v for f in FIELDS if (v := getattr(self, f)) is not None}


def parse_price(text: str, what: str) -> int | None:
    """A price as the operator typed it (USD): empty is "not overridden"; anything that is not
    an exact, non-negative amount is an ``InvalidRequest`` saying so."""
    text = text.strip()
    if not text:
        return None
    try:
        nano = usd_to_nano(text)
    except ValueError as exc:
        raise InvalidRequest(f"{what}: {exc}", param=what) from None
    if nano < 0:
        raise InvalidRequest(f"{what}: a price cannot be negative", param=what)
    check_amount(nano)
    return nano


class PriceOverrides:
    def __init__(
        self, db: Database, table: PriceTable, *, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.db = db
        self.table = table
        self.clock = clock

    async def load(self) -> list[Override]:
        async with self.db.read() as conn:
            rows = (await conn.execute(select(price_overrides).order_by("model"))).all()
        return [
            Override(
                r.model,
                *(None if getattr(r, f) is None else int(getattr(r, f)) for f in FIELDS),
            )
            for r in rows
        ]

    async def refresh(self) -> None:
        """Apply what the database holds now to the in-memory table."""
        self.table.apply_overrides({o.model: o.fields() for o in await self.load()})

    async def put(self, override: Override, by: str) -> None:
        """Set (or, with no field, remove) a model's override, and apply it here at once."""
        model = override.model.strip()
        if not model or len(model) > 200 or not model.isprintable():
            raise InvalidRequest("a model name is 1 to 200 printable characters", param="model")
        values = {f: getattr(override, f) for f in FIELDS}
        async with self.db.write() as conn:
            await conn.execute(delete(price_overrides).where(price_overrides.c.model == model))
            if override.fields():
                await conn.execute(
                    insert(price_overrides).values(
                        model=model, updated_by=by, updated_at=self.clock(), **values
                    )
                )
        log.info("prices of %s set by %s: %s", model, by, override.fields() or "defaults")
        await self.refresh()

    async def clear(self, model: str) -> None:
        async with self.db.write() as conn:
            await conn.execute(delete(price_overrides).where(price_overrides.c.model == model))
        await self.refresh()
