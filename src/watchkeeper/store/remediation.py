"""Remediation jobs and their audit trail: written before dispatch, moved state by state.

Every state change is a conditional update (``WHERE id = ? AND state IN (...)``) in one
transaction with its audit entry, so two deciders (the dispatch loop and an operator's
run/skip) cannot both move a job: the second finds nothing to update and is told so.
That, and marking a job ``dispatched`` before it is sent, is what makes an action run at
most once across crashes (see docs/remediation.md).

Readers take an `AsyncSession`; writers take the `Database` and own their transaction.
Times are epoch seconds at this boundary, as the remediation service keeps them.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from watchkeeper.store import bulk
from watchkeeper.store.db import Database
from watchkeeper.store.tables import (
    RemediationAuditRow,
    RemediationJobRow,
    remediation_audit,
    remediation_jobs,
)


class JobState(enum.Enum):
    """Where a remediation job is; the last five are final."""

    #: Waiting for an operator (``confirm: true`` rules): run or skip.
    PENDING = "pending"
    #: Persisted and waiting for a worker and a free concurrency slot.
    QUEUED = "queued"
    #: Handed to the job server; marked so *before* it is sent.
    DISPATCHED = "dispatched"
    #: The action ended (or its result was lost); the target is being re-checked.
    VERIFYING = "verifying"
    #: The re-check after the action was OK.
    SUCCEEDED = "succeeded"
    #: The re-check still found the problem (or none came); escalated by notification.
    FAILED = "failed"
    #: Not run: an operator skipped it, or the target recovered or was silenced first.
    SKIPPED = "skipped"
    #: Waited too long to be confirmed or dispatched.
    EXPIRED = "expired"
    #: The manager stopped while the action may have been running: never re-run.
    INTERRUPTED = "interrupted"

    @property
    def final(self) -> bool:
        return self not in _LIVE


_LIVE = frozenset({JobState.PENDING, JobState.QUEUED, JobState.DISPATCHED, JobState.VERIFYING})
LIVE_STATES = tuple(sorted(s.value for s in _LIVE))


@dataclass(frozen=True, slots=True, kw_only=True)
class RemediationJob:
    """One attempt of one rule on one target."""

    id: int
    rule: str
    target: str
    host: str
    service: str | None
    zone: str
    action: dict[str, Any]
    state: JobState
    trigger: str
    created_at: float
    updated_at: float
    dispatched_at: float | None = None
    finished_at: float | None = None
    worker: str | None = None
    output: str | None = None
    decided_by: str | None = None

    @property
    def wire_id(self) -> str:
        """The job id on the wire: unique per job, the same if it is submitted again."""
        return f"rem-{self.id}"

    @classmethod
    def from_row(cls, row: RemediationJobRow) -> RemediationJob:
        return cls(
            id=row.id,
            rule=row.rule,
            target=row.target,
            host=row.host,
            service=row.service,
            zone=row.zone,
            action=dict(row.action),
            state=JobState(row.state),
            trigger=row.trigger,
            created_at=_epoch(row.created_at),
            updated_at=_epoch(row.updated_at),
            dispatched_at=_epoch_or_none(row.dispatched_at),
            finished_at=_epoch_or_none(row.finished_at),
            worker=row.worker,
            output=row.output,
            decided_by=row.decided_by,
        )

    def as_dict(self) -> dict[str, Any]:
        """The JSON form for the API."""
        return {
            "id": self.id,
            "rule": self.rule,
            "target": self.target,
            "host": self.host,
            "service": self.service,
            "zone": self.zone,
            "action": self.action,
            "state": self.state.value,
            "trigger": self.trigger,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "dispatched_at": self.dispatched_at,
            "finished_at": self.finished_at,
            "worker": self.worker,
            "output": self.output,
            "decided_by": self.decided_by,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEntry:
    """One step or decision; ``id`` is 0 until stored."""

    at: float
    rule: str
    #: A check key, or ``*`` for a decision about a whole rule.
    target: str
    event: str
    output: str
    job_id: int | None = None
    outcome: str | None = None
    worker: str | None = None
    author: str | None = None
    id: int = 0

    @classmethod
    def from_row(cls, row: RemediationAuditRow) -> AuditEntry:
        return cls(
            id=row.id,
            at=_epoch(row.at),
            job_id=row.job_id,
            rule=row.rule,
            target=row.target,
            event=row.event,
            outcome=row.outcome,
            worker=row.worker,
            author=row.author,
            output=row.output,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at,
            "job_id": self.job_id,
            "rule": self.rule,
            "target": self.target,
            "event": self.event,
            "outcome": self.outcome,
            "worker": self.worker,
            "author": self.author,
            "output": self.output,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class NewJob:
    """What the service knows when a rule matches: the job to write."""

    rule: str
    target: str
    host: str
    service: str | None
    zone: str
    action: dict[str, Any]
    trigger: str
    state: JobState


def _dt(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _epoch(value: datetime) -> float:
    return value.timestamp()


def _epoch_or_none(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _audit_values(entry: AuditEntry) -> dict[str, Any]:
    return {
        "at": _dt(entry.at),
        "job_id": entry.job_id,
        "rule": entry.rule,
        "target": entry.target,
        "event": entry.event,
        "outcome": entry.outcome,
        "worker": entry.worker,
        "author": entry.author,
        "output": entry.output,
    }


async def create_job(
    db: Database, new: NewJob, *, now: float, output: str, event: str | None = None
) -> RemediationJob:
    """Write a job and its first audit entry (``event``, by default its state) at once."""
    async with db.begin() as session:
        row = RemediationJobRow(
            rule=new.rule,
            target=new.target,
            host=new.host,
            service=new.service,
            zone=new.zone,
            action=new.action,
            state=new.state.value,
            trigger=new.trigger,
            created_at=_dt(now),
            updated_at=_dt(now),
            output=None,
        )
        session.add(row)
        await session.flush()
        job = RemediationJob.from_row(row)
        await session.execute(
            sa.insert(remediation_audit),
            [
                _audit_values(
                    AuditEntry(
                        at=now,
                        job_id=job.id,
                        rule=new.rule,
                        target=new.target,
                        event=event or new.state.value,
                        outcome=new.state.value,
                        output=output,
                    )
                )
            ],
        )
    return job


async def transition(
    db: Database,
    job_id: int,
    *,
    from_states: Iterable[JobState],
    to: JobState,
    now: float,
    event: str,
    audit_output: str | None,
    output: str | None = None,
    worker: str | None = None,
    author: str | None = None,
    dispatched: bool | None = None,
) -> RemediationJob | None:
    """Move a job to ``to`` if it is in one of ``from_states``, with an audit entry.

    Returns the job as it is now, or None when it was not in those states (someone else
    moved it first, or there is no such job): then nothing is written. ``audit_output``
    None writes no audit entry (the caller audits once the step is certain);
    ``dispatched`` True stamps ``dispatched_at``, False clears it (a job put back).
    """
    j = remediation_jobs.c
    values: dict[str, Any] = {"state": to.value, "updated_at": _dt(now)}
    if output is not None:
        values["output"] = output
    if worker is not None:
        values["worker"] = worker
    if author is not None:
        values["decided_by"] = author
    if dispatched is not None:
        values["dispatched_at"] = _dt(now) if dispatched else None
    if to.final:
        values["finished_at"] = _dt(now)
    async with db.begin() as session:
        result = await session.execute(
            sa.update(remediation_jobs)
            .where(j.id == job_id, j.state.in_([s.value for s in from_states]))
            .values(**values)
            .returning(*remediation_jobs.c)
        )
        row = result.one_or_none()
        if row is None:
            return None
        job = RemediationJob.from_row(RemediationJobRow(**row._asdict()))
        if audit_output is None:
            return job
        await session.execute(
            sa.insert(remediation_audit),
            [
                _audit_values(
                    AuditEntry(
                        at=now,
                        job_id=job_id,
                        rule=job.rule,
                        target=job.target,
                        event=event,
                        outcome=to.value,
                        worker=job.worker,
                        author=author,
                        output=audit_output,
                    )
                )
            ],
        )
    return job


async def record_audit(db: Database, entries: Sequence[AuditEntry]) -> None:
    """Store decisions that moved no job (skips, circuit breakers) in one transaction."""
    if not entries:
        return
    async with db.begin() as session:
        await session.execute(sa.insert(remediation_audit), [_audit_values(e) for e in entries])


async def get_job(session: AsyncSession, job_id: int) -> RemediationJob | None:
    row = await session.get(RemediationJobRow, job_id)
    return None if row is None else RemediationJob.from_row(row)


async def list_jobs(
    session: AsyncSession,
    *,
    states: Iterable[JobState] | None = None,
    rule: str | None = None,
    target: str | None = None,
    limit: int | None = None,
) -> list[RemediationJob]:
    """Jobs, newest first, filtered by state, rule and target."""
    query = sa.select(RemediationJobRow).order_by(RemediationJobRow.id.desc())
    if states is not None:
        query = query.where(RemediationJobRow.state.in_([s.value for s in states]))
    if rule is not None:
        query = query.where(RemediationJobRow.rule == rule)
    if target is not None:
        query = query.where(RemediationJobRow.target == target)
    if limit is not None:
        query = query.limit(limit)
    rows = await session.scalars(query)
    return [RemediationJob.from_row(row) for row in rows]


async def attempts_since(session: AsyncSession, since: float) -> list[RemediationJob]:
    """Jobs dispatched at or after ``since``, oldest first: the guardrails' history."""
    query = (
        sa.select(RemediationJobRow)
        .where(RemediationJobRow.dispatched_at >= _dt(since))
        .order_by(RemediationJobRow.dispatched_at)
    )
    return [RemediationJob.from_row(row) for row in await session.scalars(query)]


async def list_audit(
    session: AsyncSession,
    *,
    job_id: int | None = None,
    rule: str | None = None,
    target: str | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """Audit entries, newest first; page with ``before_id`` (the last id of a page)."""
    query = sa.select(RemediationAuditRow).order_by(RemediationAuditRow.id.desc()).limit(limit)
    if job_id is not None:
        query = query.where(RemediationAuditRow.job_id == job_id)
    if rule is not None:
        query = query.where(RemediationAuditRow.rule == rule)
    if target is not None:
        query = query.where(RemediationAuditRow.target == target)
    if before_id is not None:
        query = query.where(RemediationAuditRow.id < before_id)
    return [AuditEntry.from_row(row) for row in await session.scalars(query)]


async def prune_audit(db: Database, *, before: float) -> int:
    """Delete audit entries older than ``before``; returns how many."""
    return await bulk.prune(db, remediation_audit, older_than=_dt(before))


__all__ = [
    "LIVE_STATES",
    "AuditEntry",
    "JobState",
    "NewJob",
    "RemediationJob",
    "attempts_since",
    "create_job",
    "get_job",
    "list_audit",
    "list_jobs",
    "prune_audit",
    "record_audit",
    "transition",
]
