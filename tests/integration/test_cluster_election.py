"""The election and the fence on a real PostgreSQL database, in one process.

Two `Election` s contend on the session's scratch database: one leads, the other stands
by; the leader's session ended by the server (as ``idle_session_timeout`` ends a frozen
one) makes the other lead at the next term. A write of the old term, fenced by
`TermFence`, is rolled back even while its own lease still looks good: the database's
term decides.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import psycopg
import pytest
import sqlalchemy as sa

from tests.waiting import wait_until
from watchkeeper import store
from watchkeeper.cluster.election import Election, NodeInfo, conninfo
from watchkeeper.cluster.fence import TermFence
from watchkeeper.cluster.lease import LeaseSettings, Role
from watchkeeper.store import tables
from watchkeeper.store.fencing import FENCE, Fenced

pytestmark = pytest.mark.postgres
FAST = LeaseSettings(lease=3.0, heartbeat=0.2)


@pytest.fixture
async def pg(pg_database: str) -> AsyncIterator[store.Database]:
    database = store.Database.from_url(pg_database)
    await database.migrate()
    async with database.begin() as session:
        for table in (tables.cluster_nodes, tables.leader_terms):
            await session.execute(sa.delete(table))
        # Other tests of the session empty every table: the term row too, which the
        # election must survive (its bump is an upsert).
        await session.execute(sa.delete(tables.cluster_leader))
    try:
        yield database
    finally:
        await database.aclose()


class _Node:
    def __init__(self, url: str, name: str) -> None:
        self.led: list[int] = []
        self.stepped: list[str] = []
        self.election = Election(
            url, NodeInfo(node=name, url=f"http://{name}", jobs=f"{name}:4730"), FAST,
            on_lead=self._lead, on_step_down=self._down,
        )  # fmt: skip
        self.task = asyncio.create_task(self.election.run())

    async def _lead(self, term: int, previous: str) -> None:
        self.led.append(term)

    async def _down(self, why: str) -> None:
        self.stepped.append(why)

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def _backend_of(url: str, node: str) -> int:
    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        row = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s",
            (f"watchkeeper-election {node}",),
        ).fetchone()
    assert row is not None
    return int(row[0])


async def test_one_leads_then_the_other_takes_over_and_old_writes_are_fenced(
    pg: store.Database, pg_database: str
) -> None:
    a, b = _Node(pg_database, "a"), _Node(pg_database, "b")
    try:
        await wait_until(lambda: bool(a.led or b.led), within=10, what="a leader")
        leader, standby = (a, b) if a.led else (b, a)
        since = standby.election.beats
        await wait_until(
            lambda: standby.election.beats >= since + 3, within=10,
            what="three more heartbeats of the standby",
        )  # fmt: skip
        assert standby.led == []  # each of them saw the lock held: still one leader
        assert standby.election.role is Role.STANDBY
        assert standby.election.seen_leader == leader.election.info.node
        old = leader.led[0]
        # The fence of the old term, with a lease that (wrongly) still looks good:
        fence = TermFence(old, lambda: True)
        # The server ends the leader's session, as it ends a frozen one.
        pid = await _backend_of(pg_database, leader.election.info.node)
        with psycopg.connect(conninfo(pg_database), autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        await wait_until(lambda: bool(standby.led), within=10, what="the standby leads")
        assert standby.led == [old + 1]
        await wait_until(lambda: bool(leader.stepped), within=10, what="the old leader stops")
        token = FENCE.set(fence)
        try:
            with pytest.raises(Fenced, match=f"at term {old + 1}"):
                async with pg.begin() as session:
                    await session.execute(
                        sa.update(tables.cluster_nodes).values(version="stale write")
                    )
        finally:
            FENCE.reset(token)
        async with pg.session() as session:
            stale = await session.scalar(
                sa.select(sa.func.count()).where(tables.cluster_nodes.c.version == "stale write")
            )
            terms = (
                await session.execute(
                    sa.select(tables.leader_terms).order_by(tables.leader_terms.c.term)
                )
            ).all()
        assert stale == 0
        assert [t.term for t in terms] == [old, old + 1]
        assert terms[-1].previous == leader.election.info.node
    finally:
        await a.stop()
        await b.stop()
