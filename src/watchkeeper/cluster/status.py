"""What the web, the CLI and ``/metrics`` show of the cluster: this node and the others.

This node's role and term come from its election, in memory (``/metrics`` and the standby
gate read them on every request). The other nodes, the term row and the history of terms
(the takeover audit) are read from the store on demand, and on a standby's refresh to learn
where the leader's web is (`leader_url`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from watchkeeper.cluster.lease import LeaseSettings, Role
from watchkeeper.store import tables
from watchkeeper.store.db import Database

if TYPE_CHECKING:
    from watchkeeper.cluster.election import Election

#: Terms of history shown.
HISTORY = 20


@dataclass(frozen=True, slots=True)
class NodeRow:
    node: str
    role: str
    term: int
    url: str
    jobs: str
    pid: int
    version: str
    started_at: datetime
    heartbeat_at: datetime
    #: Its last heartbeat is younger than a lease.
    alive: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "role": self.role,
            "term": self.term,
            "url": self.url,
            "jobs": self.jobs,
            "pid": self.pid,
            "version": self.version,
            "started_at": self.started_at.isoformat(),
            "heartbeat_at": self.heartbeat_at.isoformat(),
            "alive": self.alive,
        }


@dataclass(frozen=True, slots=True)
class TermRow:
    term: int
    node: str
    previous: str
    since: datetime
    ended_at: datetime | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "term": self.term,
            "node": self.node,
            "previous": self.previous,
            "since": self.since.isoformat(),
            "ended_at": None if self.ended_at is None else self.ended_at.isoformat(),
            "reason": self.reason,
        }


class ClusterView:
    """This manager's place in its cluster (a single manager is its own leader)."""

    def __init__(self, db: Database, *, node: str, lease: LeaseSettings, ha: bool = False) -> None:
        self.db = db
        self.node = node
        self.lease = lease
        #: Clustered (``--ha``): this node leads only while its election says so.
        self.ha = ha
        #: Set by a clustered manager once it runs its election.
        self.election: Election | None = None
        #: The web address of the leader, as the last refresh read it ("" unknown).
        self.leader_url = ""

    @property
    def role(self) -> Role:
        if not self.ha:
            return Role.LEADER
        return Role.STANDBY if self.election is None else self.election.role

    @property
    def term(self) -> int:
        election = self.election
        if election is None:
            return 0
        return election.term if election.role is Role.LEADER else election.seen_term

    @property
    def leader(self) -> str:
        election = self.election
        if not self.ha:
            return self.node
        if election is None:
            return ""
        return self.node if election.role is Role.LEADER else election.seen_leader

    def may_write(self) -> bool:
        """Whether leader-only requests are served here (a single manager: always)."""
        if not self.ha:
            return True
        return self.election is not None and self.election.may_act()

    async def refresh(self) -> None:
        """Learn the leader's web address from its node row."""
        leader = self.leader
        if not leader or self.election is None:
            return
        async with self.db.session() as session:
            url = await session.scalar(
                sa.select(tables.cluster_nodes.c.url).where(tables.cluster_nodes.c.node == leader)
            )
        self.leader_url = str(url or "")

    async def nodes(self, now: datetime | None = None) -> list[NodeRow]:
        now = now or datetime.now(UTC)
        n = tables.ClusterNodeRow
        async with self.db.session() as session:
            rows = (await session.scalars(sa.select(n).order_by(n.node))).all()
        return [
            NodeRow(
                node=r.node, role=r.role, term=r.term, url=r.url, jobs=r.jobs, pid=r.pid,
                version=r.version, started_at=r.started_at, heartbeat_at=r.heartbeat_at,
                alive=(now - r.heartbeat_at).total_seconds() < self.lease.lease,
            )
            for r in rows
        ]  # fmt: skip

    async def terms(self, limit: int = HISTORY) -> list[TermRow]:
        t = tables.LeaderTermRow
        async with self.db.session() as session:
            rows = (await session.scalars(sa.select(t).order_by(t.term.desc()).limit(limit))).all()
        return [
            TermRow(
                term=r.term, node=r.node, previous=r.previous, since=r.since,
                ended_at=r.ended_at, reason=r.reason,
            )
            for r in rows
        ]  # fmt: skip

    def sample(self) -> tuple[str, bool, int] | None:
        """For ``/metrics``: node, leads, term; None for a single manager."""
        return (self.node, self.role is Role.LEADER, self.term) if self.ha else None

    async def status(self) -> dict[str, Any]:
        """The whole picture, as the API answers it."""
        ha = self.ha
        return {
            "ha": ha,
            "node": self.node,
            "role": self.role.value,
            "term": self.term,
            "leader": self.leader,
            "leader_url": self.leader_url if ha and self.role is Role.STANDBY else "",
            "lease_s": self.lease.lease,
            "heartbeat_s": self.lease.heartbeat,
            "nodes": [row.as_dict() for row in await self.nodes()] if ha else [],
            "terms": [row.as_dict() for row in await self.terms()] if ha else [],
        }
