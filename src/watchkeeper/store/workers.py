"""Worker keys: which SSH key may serve which zones (principle 2, "the manager decides").

Enrolment lives in the store, not in the document: keys are credentials an operator grants
on the manager, while the document comes from an external source that must not be able to
let a new key in. A revoked key keeps its row (and its name, and its key) so the audit trail
says who could connect when; it can never be enrolled again.

Readers take an `AsyncSession`; writers take the `Database` and own their transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from watchkeeper.errors import Conflict, StoreError
from watchkeeper.store.db import Database
from watchkeeper.store.tables import WorkerKeyRow


class WorkerKeyConflict(Conflict):
    """A worker key with this name or this public key is already enrolled."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerKey:
    """An enrolled worker key; ``zones`` are all it may serve, whatever its hello claims."""

    name: str
    #: OpenSSH one-line form without a comment.
    public_key: str
    fingerprint: str
    zones: tuple[str, ...]
    labels: dict[str, str]
    created_at: datetime
    revoked_at: datetime | None = None
    #: The host this key is the agent of: it runs that host's agent checks and no others.
    agent_for: str | None = None

    @classmethod
    def from_row(cls, row: WorkerKeyRow) -> WorkerKey:
        return cls(
            name=row.name,
            public_key=row.public_key,
            fingerprint=row.fingerprint,
            zones=tuple(row.zones),
            labels=dict(row.labels),
            created_at=row.created_at,
            revoked_at=row.revoked_at,
            agent_for=row.agent_for,
        )

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "name": self.name,
            "fingerprint": self.fingerprint,
            "public_key": self.public_key,
            "zones": list(self.zones),
            "labels": self.labels,
            "agent_for": self.agent_for,
            "created_at": self.created_at.isoformat(),
            "revoked_at": None if self.revoked_at is None else self.revoked_at.isoformat(),
        }

    def log_context(self) -> dict[str, Any]:
        return {"name": self.name, "fingerprint": self.fingerprint, "zones": list(self.zones)}


async def list_worker_keys(
    session: AsyncSession, *, include_revoked: bool = True
) -> list[WorkerKey]:
    """Enrolled keys by name."""
    query = sa.select(WorkerKeyRow).order_by(WorkerKeyRow.name)
    if not include_revoked:
        query = query.where(WorkerKeyRow.revoked_at.is_(None))
    return [WorkerKey.from_row(r) for r in await session.scalars(query)]


async def find_by_public_key(session: AsyncSession, public_key: str) -> WorkerKey | None:
    """The enrolment of a key (revoked or not) in canonical one-line form, or None."""
    row = await session.scalar(sa.select(WorkerKeyRow).where(WorkerKeyRow.public_key == public_key))
    return None if row is None else WorkerKey.from_row(row)


async def add_worker_key(
    db: Database,
    *,
    name: str,
    public_key: str,
    fingerprint: str,
    zones: list[str],
    labels: dict[str, str],
    now: datetime,
    agent_for: str | None = None,
) -> WorkerKey:
    """Enrol a key for ``zones``; `WorkerKeyConflict` if the name or the key is taken.

    The check and the insert share one write transaction, so two enrolments of one name
    cannot both pass the check; a unique violation from a racing writer is mapped too.
    """
    if not zones:
        raise ValueError("a worker key needs at least one zone")
    row = WorkerKeyRow(
        name=name,
        public_key=public_key,
        fingerprint=fingerprint,
        zones=list(zones),
        labels=dict(labels),
        agent_for=agent_for,
        created_at=now,
        revoked_at=None,
    )
    try:
        async with db.begin() as session:
            clash = await session.scalar(
                sa.select(WorkerKeyRow).where(
                    sa.or_(WorkerKeyRow.name == name, WorkerKeyRow.public_key == public_key)
                )
            )
            if clash is not None:
                what = "name" if clash.name == name else "public key"
                state = "revoked" if clash.revoked_at is not None else "enrolled"
                raise WorkerKeyConflict(
                    f"a worker key with this {what} is already {state} as {clash.name!r}"
                )
            session.add(row)
    except WorkerKeyConflict:
        raise
    except StoreError as exc:
        if isinstance(exc.__cause__, sa.exc.IntegrityError):
            raise WorkerKeyConflict() from exc
        raise
    return WorkerKey.from_row(row)


async def revoke_worker_key(db: Database, name: str, *, now: datetime) -> WorkerKey | None:
    """Mark ``name`` revoked (once: revoking again keeps the first time); None if unknown."""
    async with db.begin() as session:
        row = await session.get(WorkerKeyRow, name)
        if row is None:
            return None
        if row.revoked_at is None:
            row.revoked_at = now
        return WorkerKey.from_row(row)
