"""The election: one dedicated PostgreSQL session per manager holds the leader lock.

Every heartbeat this session, in autocommit:
* on a standby, tries ``pg_try_advisory_lock``; the winner bumps the term in
  ``cluster_leader`` (one row, so the update waits for any write of the old term still
  holding it ``FOR SHARE``: the old leader's last batch commits before, never after) and
  records the term in ``leader_terms``;
* on the leader, reads the term row and its own lock in ``pg_locks``: a term that moved
  (bumped by hand, or by a node that won a lock this one lost) deposes it;
* on every node, upserts its ``cluster_nodes`` row (role, term, addresses, heartbeat).

The session sets ``idle_session_timeout`` to the lease, so a frozen leader's session, and
with it the lock, is ended by the server within the lease (`watchkeeper.cluster.lease`).
What a beat found is a `Beat`; `lease.decide` makes it a decision; this class carries it
out and tells the manager (``on_lead``, ``on_step_down``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import psycopg
from sqlalchemy.engine import make_url

from watchkeeper import __version__
from watchkeeper.cluster.lease import (
    LEADER_LOCK_KEY,
    Beat,
    Lead,
    LeaseSettings,
    Role,
    StepDown,
    decide,
    valid,
)
from watchkeeper.latch import FailureLatch
from watchkeeper.logs import NOTICE
from watchkeeper.store.db import mask, reason

logger = logging.getLogger(__name__)

_LOCK_HELD = """
SELECT EXISTS (
  SELECT 1 FROM pg_locks
   WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
     AND classid = %(hi)s::oid AND objid = %(lo)s::oid AND objsubid = 1)
"""
#: An upsert, not an update of the row the migration seeds: a term row deleted by hand (or
#: by a TRUNCATE of every table) must not leave the cluster without a leader.
_BUMP = """
INSERT INTO cluster_leader AS l (id, term, node, since)
VALUES (1, COALESCE((SELECT max(term) FROM leader_terms), 0) + 1, %(node)s, now())
ON CONFLICT (id) DO UPDATE SET term = l.term + 1, node = excluded.node, since = excluded.since
RETURNING term, (SELECT node FROM leader_terms ORDER BY term DESC LIMIT 1)
"""
_RECORD_TERM = """
INSERT INTO leader_terms (term, node, previous, since, reason)
VALUES (%(term)s, %(node)s, %(previous)s, now(), %(reason)s)
"""
_END_TERMS = "UPDATE leader_terms SET ended_at = now() WHERE term < %(term)s AND ended_at IS NULL"
_NODE = """
INSERT INTO cluster_nodes (node, role, term, url, jobs, pid, version, started_at, heartbeat_at)
VALUES (%(node)s, %(role)s, %(term)s, %(url)s, %(jobs)s, %(pid)s, %(version)s, now(), now())
ON CONFLICT (node) DO UPDATE SET role = excluded.role, term = excluded.term,
  url = excluded.url, jobs = excluded.jobs, pid = excluded.pid, version = excluded.version,
  heartbeat_at = excluded.heartbeat_at
"""
_STARTED = "UPDATE cluster_nodes SET started_at = now() WHERE node = %(node)s"


def conninfo(url: str) -> str:
    """The libpq connection string of the store's URL, as SQLAlchemy's psycopg dialect
    reads it, so a multi-host URL (``?host=db1:5432&host=db2:5432&target_session_attrs=
    read-write``) reaches the same primary as the managers' pool does."""
    parsed = make_url(url).set(drivername="postgresql+psycopg")
    _, params = parsed.get_dialect()().create_connect_args(parsed)
    return psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in params.items()})


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """How this manager introduces itself in ``cluster_nodes``."""

    node: str
    url: str
    jobs: str


class Election:
    """Contend for the leader lock and keep it; `run` until cancelled."""

    def __init__(
        self,
        database_url: str,
        info: NodeInfo,
        settings: LeaseSettings,
        *,
        on_lead: Callable[[int, str], Awaitable[None]],
        on_step_down: Callable[[str], Awaitable[None]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._conninfo = conninfo(database_url)
        self._where = mask(database_url)
        self.info = info
        self.settings = settings
        self._on_lead = on_lead
        self._on_step_down = on_step_down
        self._clock = clock
        self.role = Role.STANDBY
        self.term = 0
        #: The term and node the last beat saw in the database.
        self.seen_term = 0
        self.seen_leader = ""
        #: Heartbeats carried out so far: each one decided (stay, lead or step down).
        self.beats = 0
        self._last_good = clock()
        self._not_before = 0.0
        self._conn: psycopg.AsyncConnection[tuple[object, ...]] | None = None
        self._first_row = True
        self._latch = FailureLatch(
            logger,
            "cluster heartbeat failed, will retry: %s",
            "cluster heartbeat recovered",
            action="cluster_heartbeat",
        )

    # --- what the fence and the manager ask -------------------------------------------------

    def may_act(self) -> bool:
        """Whether this node leads and its lease is still good by the monotonic clock."""
        return self.role is Role.LEADER and valid(self._clock() - self._last_good, self.settings)

    # --- the loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            while True:
                started = self._clock()
                beat = await self._beat()
                await self._carry_out(beat)
                spent = self._clock() - started
                await asyncio.sleep(max(0.0, self.settings.heartbeat - spent))
        finally:
            if self.role is Role.LEADER:
                self.role = Role.STANDBY
            await self._close()

    async def _carry_out(self, beat: Beat) -> None:
        now = self._clock()
        if beat.ok:
            self._latch.succeeded()
            self.seen_term, self.seen_leader = beat.term, beat.leader
        else:
            self._latch.failed(beat.error)
        decision = decide(
            self.role, self.term, beat, since_good=now - self._last_good, settings=self.settings
        )
        if beat.ok:
            self._last_good = now
        if isinstance(decision, Lead):
            await self._take_over(beat)
        elif isinstance(decision, StepDown):
            await self.step_down(decision.reason)
        self.beats += 1

    async def step_down(self, why: str) -> None:
        """Stop leading: the manager stops its leader work first, then the lock goes."""
        if self.role is not Role.LEADER:
            return
        self.role = Role.STANDBY
        self._not_before = self._clock() + self.settings.hold_off
        logger.warning(
            "stepping down as leader of term %d: %s", self.term, why,
            extra={"action": "cluster_step_down", "term": self.term},
        )  # fmt: skip
        try:
            await self._on_step_down(why)
        finally:
            await self._close()  # the session's end frees the lock, whatever state it is in

    async def _take_over(self, beat: Beat) -> None:
        conn = self._conn
        assert conn is not None
        try:
            async with conn.transaction():
                cur = await conn.execute(_BUMP, {"node": self.info.node})
                row = await cur.fetchone()
                if row is None:  # RETURNING always gives the row; a driver surprise
                    raise psycopg.DataError("the term bump returned no row")
                term, previous = int(str(row[0])), str(row[1] or "")
                why = f"took over from {previous}" if previous else "first leader"
                await conn.execute(
                    _RECORD_TERM,
                    {"term": term, "node": self.info.node, "previous": previous, "reason": why},
                )
                await conn.execute(_END_TERMS, {"term": term})
                await conn.execute(_NODE, self._node_params(Role.LEADER, term))
        except psycopg.Error as exc:
            self._latch.failed(reason(exc))
            await self._close()
            return
        self.term, self.seen_term, self.seen_leader = term, term, self.info.node
        self.role = Role.LEADER
        self._last_good = self._clock()
        logger.log(
            NOTICE, "leading term %d (%s)", term, why,
            extra={"action": "cluster_leader", "term": term, "previous": previous},
        )  # fmt: skip
        try:
            await self._on_lead(term, previous)
        except Exception as exc:  # the leader work did not start: let another node lead
            logger.exception("the leader work of term %d failed to start", term)
            await self.step_down(f"the leader work failed to start: {exc}")

    # --- one heartbeat ----------------------------------------------------------------------

    async def _beat(self) -> Beat:
        try:
            conn = await self._connect()
            role = self.role
            holds = False
            if role is Role.STANDBY and self._clock() >= self._not_before:
                cur = await conn.execute(
                    "SELECT pg_try_advisory_lock(%(key)s)", {"key": LEADER_LOCK_KEY}
                )
                found = await cur.fetchone()
                holds = bool(found and found[0])
            elif role is Role.LEADER:
                cur = await conn.execute(
                    _LOCK_HELD,
                    {"hi": LEADER_LOCK_KEY >> 32, "lo": LEADER_LOCK_KEY & 0xFFFF_FFFF},
                )
                found = await cur.fetchone()
                holds = bool(found and found[0])
            cur = await conn.execute("SELECT term, node FROM cluster_leader WHERE id = 1")
            row = await cur.fetchone()
            term, leader = (int(str(row[0])), str(row[1])) if row else (0, "")
            await conn.execute(
                _NODE, self._node_params(role, self.term if role is Role.LEADER else 0)
            )
            if self._first_row:
                await conn.execute(_STARTED, {"node": self.info.node})
                self._first_row = False
        except (psycopg.Error, OSError) as exc:
            await self._close()
            return Beat(ok=False, error=f"{self._where}: {reason(exc)}")
        return Beat(ok=True, holds_lock=holds, term=term, leader=leader)

    def _node_params(self, role: Role, term: int) -> dict[str, object]:
        return {
            "node": self.info.node,
            "role": role.value,
            "term": term,
            "url": self.info.url,
            "jobs": self.info.jobs,
            "pid": os.getpid(),
            "version": __version__,
        }

    async def _connect(self) -> psycopg.AsyncConnection[tuple[object, ...]]:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        timeout = max(1, int(self.settings.lease))
        conn = await psycopg.AsyncConnection.connect(
            self._conninfo,
            autocommit=True,
            connect_timeout=timeout,
            application_name=f"watchkeeper-election {self.info.node}",
        )
        # The server ends this session (and frees its lock) once it has been idle for a
        # lease: how a frozen leader loses the lock without anyone's help.
        await conn.execute(f"SET idle_session_timeout = {int(self.settings.lease * 1000)}")
        # A network loss is noticed by the kernel within the lease, not after hours.
        await conn.execute(f"SET tcp_user_timeout = {int(self.settings.lease * 1000)}")
        self._conn = conn
        return conn

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error, OSError):
                await conn.close()
