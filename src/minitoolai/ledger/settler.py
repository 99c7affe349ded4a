"""The group-commit settle writer: the settles and releases of many requests in one transaction
(``LedgerStore.finish_many``, per ``ledger.group_commit``'s rules)."""

from __future__ import annotations

from minitoolai.ledger.group_commit import MAX_BATCH, GroupCommit, WriterStopped
from minitoolai.ledger.store.base import Finish, Finished, LedgerStore

__all__ = ["MAX_BATCH", "SettleWriter", "WriterStopped"]


class SettleWriter(GroupCommit[Finish, "Finished | None"]):
    """Settles and releases (none the sweeper's): ``finish_many`` per batch."""

    def __init__(
        self, store: LedgerStore, *, gather_s: float = 0.0, max_batch: int = MAX_BATCH
    ) -> None:
        super().__init__(gather_s=gather_s, max_batch=max_batch)
        self.store = store

    async def _many(self, steps: list[Finish]) -> list[Finished | None]:
        return await self.store.finish_many(steps)

    async def _one(self, step: Finish) -> Finished | None:
        return await self.store.finish(step)
