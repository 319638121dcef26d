"""The term fence: lapsed lease or moved term, the write is refused before it commits."""

from __future__ import annotations

from typing import Any

import pytest

from watchkeeper.cluster.fence import TermFence
from watchkeeper.store.fencing import FENCE, Fenced, current_term


class _Result:
    def __init__(self, value: Any) -> None:
        self.value = value

    def scalar(self) -> Any:
        return self.value


class _Session:
    """Answers the fence's one query with the term the database would hold."""

    def __init__(self, term: int) -> None:
        self.term = term
        self.statements: list[str] = []

    async def execute(self, statement: Any) -> _Result:
        self.statements.append(str(statement))
        return _Result(self.term)


async def test_writes_of_the_current_term_pass_and_lock_the_term_row() -> None:
    fence = TermFence(3, lambda: True)
    session = _Session(3)
    await fence.check(session)  # type: ignore[arg-type]
    assert session.statements == ["SELECT term FROM cluster_leader WHERE id = 1 FOR SHARE"]
    assert fence.refused == 0


async def test_a_moved_term_refuses_the_write() -> None:
    fence = TermFence(3, lambda: True)
    with pytest.raises(Fenced, match="cluster is at term 4"):
        await fence.check(_Session(4))  # type: ignore[arg-type]
    assert fence.refused == 1


async def test_a_lapsed_lease_refuses_without_asking_the_database() -> None:
    fence = TermFence(3, lambda: False)
    session = _Session(3)
    with pytest.raises(Fenced, match="lease has lapsed"):
        await fence.check(session)  # type: ignore[arg-type]
    assert session.statements == []


def test_the_term_of_the_running_leader_work() -> None:
    assert current_term() is None
    token = FENCE.set(TermFence(7, lambda: True))
    try:
        assert current_term() == 7
    finally:
        FENCE.reset(token)
