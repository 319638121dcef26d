"""The leader's fence: the store's `Fence` for one term of one node.

Two gates, both needed. The first is local and free: the election's lease must still be
good by the monotonic clock (`Election.may_act`), so a leader that wakes from a pause
stops before anything reaches the database or a worker. The second is the database's
word: inside the write's transaction, ``SELECT term ... FOR SHARE`` must return this term.
The row lock orders the write against a takeover: a new leader's term bump waits for the
write to commit, and a write that comes after the bump sees the new term and rolls back.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from watchkeeper.store.fencing import Fenced

_TERM = sa.text("SELECT term FROM cluster_leader WHERE id = 1 FOR SHARE")


class TermFence:
    """Let writes of ``term`` commit only while ``may_act()`` and the database agree."""

    def __init__(self, term: int, may_act: Callable[[], bool]) -> None:
        self.term = term
        self._may_act = may_act
        #: Writes refused, for the logs and the tests.
        self.refused = 0

    async def check(self, session: AsyncSession) -> None:
        if not self._may_act():
            self.refused += 1
            raise Fenced(f"term {self.term} may not write: this manager's lease has lapsed")
        found = (await session.execute(_TERM)).scalar()
        if found != self.term:
            self.refused += 1
            raise Fenced(f"term {self.term} may not write: the cluster is at term {found}")
