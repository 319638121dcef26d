"""What the deployment stage keeps in the store.

    statuses / save_status      each deployed host's last runs (the plan, offline too)
    halts / save_halt           rollouts halted after too many failures
    pending_keys / offer_key    agent keys a deploy brought back, waiting for an admin
    approve / reject            the admin's act: enrol the agent's key, or refuse it

Approval is the only way an agent's key is enrolled: a deploy can offer a key, never
enrol one, and ``approve`` enrols it only for the host's own zone, as that host's agent
(``agent_for``), under the name ``agent-HOST``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from watchkeeper import store
from watchkeeper.clock import from_epoch, to_epoch
from watchkeeper.deploy.rollout import Status
from watchkeeper.errors import UsageError
from watchkeeper.store import tables
from watchkeeper.store.db import Database
from watchkeeper.transport import keys


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingKey:
    host: str
    deployment: str
    zone: str
    public_key: str
    fingerprint: str
    seen_at: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "deployment": self.deployment,
            "zone": self.zone,
            "public_key": self.public_key,
            "fingerprint": self.fingerprint,
            "seen_at": datetime.fromtimestamp(self.seen_at, UTC).isoformat(),
        }


async def statuses(db: Database) -> dict[tuple[str, str], Status]:
    """(deployment, host) -> its status, as last saved."""
    async with db.session() as session:
        rows = (await session.execute(sa.select(tables.deploy_status))).all()
    return {(row.deployment, row.host): Status.from_json(row.status) for row in rows}


async def save_status(
    db: Database, deployment: str, host: str, status: Status, *, now: float
) -> None:
    values = {"status": status.to_json(), "updated_at": from_epoch(now)}
    async with db.begin() as session:
        done = await session.execute(
            sa.update(tables.deploy_status)
            .where(
                tables.deploy_status.c.deployment == deployment,
                tables.deploy_status.c.host == host,
            )
            .values(**values)
        )
        if not done.rowcount:  # type: ignore[attr-defined]
            await session.execute(
                sa.insert(tables.deploy_status).values(deployment=deployment, host=host, **values)
            )


async def drop_statuses(db: Database, keep: set[tuple[str, str]]) -> None:
    """Forget the hosts no deployment has any more."""
    async with db.begin() as session:
        rows = (await session.execute(sa.select(tables.deploy_status))).all()
        for row in rows:
            if (row.deployment, row.host) not in keep:
                await session.execute(
                    sa.delete(tables.deploy_status).where(
                        tables.deploy_status.c.deployment == row.deployment,
                        tables.deploy_status.c.host == row.host,
                    )
                )


async def halts(db: Database) -> dict[str, str]:
    """Deployment -> why its rollout is halted, for the halted ones."""
    async with db.session() as session:
        rows = (await session.execute(sa.select(tables.deploy_rollouts))).all()
    return {row.deployment: row.reason for row in rows if row.halted}


async def save_halt(db: Database, deployment: str, reason: str | None, *, now: float) -> None:
    """Record a halt (``reason``) or its end (None)."""
    async with db.begin() as session:
        await session.execute(
            sa.delete(tables.deploy_rollouts).where(
                tables.deploy_rollouts.c.deployment == deployment
            )
        )
        if reason is not None:
            await session.execute(
                sa.insert(tables.deploy_rollouts).values(
                    deployment=deployment, halted=True, reason=reason, updated_at=from_epoch(now)
                )
            )


async def pending_keys(db: Database) -> list[PendingKey]:
    async with db.session() as session:
        rows = (
            await session.execute(
                sa.select(tables.pending_agent_keys).order_by(tables.pending_agent_keys.c.host)
            )
        ).all()
    return [
        PendingKey(
            host=row.host,
            deployment=row.deployment,
            zone=row.zone,
            public_key=row.public_key,
            fingerprint=row.fingerprint,
            seen_at=to_epoch(row.seen_at) or 0.0,
        )
        for row in rows
    ]


async def offer_key(
    db: Database, *, host: str, deployment: str, zone: str, public_key: str, now: float
) -> PendingKey | None:
    """A deploy brought back ``host``'s agent key: pending, unless already enrolled.

    Returns the pending entry, or None when the key is enrolled (or was revoked: a revoked
    key stays refused; the admin re-keys the host) already.
    """
    parsed = keys.parse_public_key(public_key, source=f"the agent key of {host}")
    canonical = keys.canonical_public_key(parsed)
    async with db.session() as session:
        enrolled = await store.find_by_public_key(session, canonical)
    if enrolled is not None:
        await _drop_pending(db, host)
        return None
    entry = PendingKey(
        host=host,
        deployment=deployment,
        zone=zone,
        public_key=canonical,
        fingerprint=keys.fingerprint(parsed),
        seen_at=now,
    )
    async with db.begin() as session:
        current = await session.get(tables.PendingAgentKeyRow, host)
        if current is not None and current.public_key == canonical:
            return entry
        await session.execute(
            sa.delete(tables.pending_agent_keys).where(tables.pending_agent_keys.c.host == host)
        )
        await session.execute(
            sa.insert(tables.pending_agent_keys).values(
                host=host,
                deployment=deployment,
                zone=zone,
                public_key=canonical,
                fingerprint=entry.fingerprint,
                seen_at=from_epoch(now),
            )
        )
    return entry


async def _drop_pending(db: Database, host: str) -> bool:
    async with db.begin() as session:
        done = await session.execute(
            sa.delete(tables.pending_agent_keys).where(tables.pending_agent_keys.c.host == host)
        )
    return bool(done.rowcount)  # type: ignore[attr-defined]


async def approve(db: Database, host: str, *, now: float) -> tuple[store.WorkerKey, list[str]]:
    """Enrol ``host``'s pending agent key for its zone, as its agent; `UsageError` if none.

    An agent of ``host`` enrolled before (the host was re-keyed) is revoked: one agent per
    host. Returns the enrolment and what else was done, for the admin to read.
    """
    pending = {p.host: p for p in await pending_keys(db)}
    entry = pending.get(host)
    if entry is None:
        known = ", ".join(sorted(pending)) or "none"
        raise UsageError(f"no agent key of host {host!r} waits for approval (pending: {known})")
    notes: list[str] = []
    moment = datetime.fromtimestamp(now, UTC)
    async with db.session() as session:
        existing = await store.list_worker_keys(session, include_revoked=True)
    taken = {key.name for key in existing}
    for key in existing:
        if key.agent_for == host and not key.revoked:
            await store.revoke_worker_key(db, key.name, now=moment)
            notes.append(f"revoked {key.name} ({key.fingerprint}), the host's previous agent key")
    name = _free_name(f"agent-{host}", taken)
    added = await store.add_worker_key(
        db,
        name=name,
        public_key=entry.public_key,
        fingerprint=entry.fingerprint,
        zones=[entry.zone],
        labels={},
        agent_for=host,
        now=moment,
    )
    await _drop_pending(db, host)
    return added, notes


async def reject(db: Database, host: str, *, now: float) -> PendingKey:
    """Refuse ``host``'s pending key for good; `UsageError` if none waits.

    The key is recorded as a revoked worker key (``rejected-HOST``), as Salt keeps its
    rejected keys: a later deploy that brings the same key back does not offer it again.
    """
    pending = {p.host: p for p in await pending_keys(db)}
    entry = pending.get(host)
    if entry is None:
        raise UsageError(f"no agent key of host {host!r} waits for approval")
    moment = datetime.fromtimestamp(now, UTC)
    async with db.session() as session:
        taken = {key.name for key in await store.list_worker_keys(session)}
    name = _free_name(f"rejected-{host}", taken)
    await store.add_worker_key(
        db,
        name=name,
        public_key=entry.public_key,
        fingerprint=entry.fingerprint,
        zones=[entry.zone],
        labels={},
        agent_for=host,
        now=moment,
    )
    await store.revoke_worker_key(db, name, now=moment)
    await _drop_pending(db, host)
    return entry


def _free_name(base: str, taken: set[str]) -> str:
    """``base``, or ``base-2``, ``base-3``, ...: the first worker key name not taken."""
    name, n = base[:128], 2
    while name in taken:
        name, n = f"{base}-{n}"[:128], n + 1
    return name
