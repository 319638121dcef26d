"""The write fence: a leader's writes commit only while its term is the database's.

The store knows nothing of elections (`watchkeeper.cluster`); it offers one seam. A task
that writes on behalf of a leader runs with `FENCE` set (tasks inherit it), and every write
transaction it opens (`Database.begin`) calls the fence just before committing. The fence
raises `Fenced` when the term moved on, which rolls the transaction back, so a leader
that wakes from a pause cannot commit one stale batch. Writes of no leader (an operator's
login, an imported document) run without a fence.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from watchkeeper.errors import StoreError


class Fenced(StoreError):
    """A leader-only write was refused: this node no longer leads (or may not act now)."""


class Fence(Protocol):
    #: The term the writes belong to (written into the rows that carry one).
    term: int

    async def check(self, session: AsyncSession) -> None:
        """Raise `Fenced` unless ``term`` still leads; inside the write's transaction."""
        ...


#: The fence of the task's leader work, or None outside of it.
FENCE: ContextVar[Fence | None] = ContextVar("watchkeeper_fence", default=None)


def current_term() -> int | None:
    """The term of the running leader work, for rows that record their writer's term."""
    fence = FENCE.get()
    return None if fence is None else fence.term
