"""The job queue in the database: `SqlQueueConnector`, the store's `QueueConnector`.

Every write is one transaction with its audit entry. A move is a conditional update
(``WHERE id = ? AND state IN (...)``), so of two deciders only the first moves the job; an
insert with a key first looks for a live job of its queue holding that key, and the
partial unique index ``uq_jobs_live_key`` settles a race between two writers (the loser
reads the winner's job). Times are epoch seconds at this boundary, as the queue keeps them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from watchkeeper.clock import from_epoch, to_epoch
from watchkeeper.errors import StoreError
from watchkeeper.jobs.queue import AuditEntry, Change, NewJob, Note, QueuedJob
from watchkeeper.jobs.states import LIVE_STATES, JobState
from watchkeeper.store import bulk
from watchkeeper.store.db import Database
from watchkeeper.store.tables import JobAuditRow, JobRow, job_audit, jobs

_TIMES = ("dispatched_at", "finished_at", "lease_until")


def _job(row: JobRow) -> QueuedJob:
    return QueuedJob(
        id=row.id,
        queue=row.queue,
        kind=row.kind,
        key=row.key,
        owner=row.owner,
        subject=row.subject,
        zone=row.zone,
        spec=dict(row.spec),
        meta=dict(row.meta),
        state=JobState(row.state),
        once=row.once,
        attempts=row.attempts,
        created_at=row.created_at.timestamp(),
        updated_at=row.updated_at.timestamp(),
        dispatched_at=to_epoch(row.dispatched_at),
        finished_at=to_epoch(row.finished_at),
        lease_until=to_epoch(row.lease_until),
        worker=row.worker,
        output=row.output,
        decided_by=row.decided_by,
    )


def _entry(row: JobAuditRow) -> AuditEntry:
    return AuditEntry(
        id=row.id,
        at=row.at.timestamp(),
        queue=row.queue,
        job_id=row.job_id,
        owner=row.owner,
        subject=row.subject,
        event=row.event,
        outcome=row.outcome,
        worker=row.worker,
        author=row.author,
        output=row.output,
    )


def _audit_values(entry: AuditEntry) -> dict[str, Any]:
    return {
        "at": from_epoch(entry.at),
        "queue": entry.queue,
        "job_id": entry.job_id,
        "owner": entry.owner,
        "subject": entry.subject,
        "event": entry.event,
        "outcome": entry.outcome,
        "worker": entry.worker,
        "author": entry.author,
        "output": entry.output,
    }


class SqlQueueConnector:
    """The job queue's tables on SQLite or PostgreSQL; one per process."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def insert(
        self, queue: str, job: NewJob, *, now: float, note: Note
    ) -> tuple[QueuedJob, bool]:
        try:
            return await self._insert(queue, job, now=now, note=note)
        except StoreError:
            if job.key is None:
                raise
            # Another writer took the key between our look and our insert: theirs stands.
            found = await self._live_with_key(queue, job.key)
            if found is None:
                raise
            return found, False

    async def _insert(
        self, queue: str, job: NewJob, *, now: float, note: Note
    ) -> tuple[QueuedJob, bool]:
        async with self.db.begin() as session:
            if job.key is not None:
                existing = await session.scalar(
                    sa.select(JobRow).where(
                        JobRow.queue == queue,
                        JobRow.key == job.key,
                        JobRow.state.in_(LIVE_STATES),
                    )
                )
                if existing is not None:
                    return _job(existing), False
            row = JobRow(
                queue=queue,
                kind=job.kind,
                key=job.key,
                owner=job.owner,
                subject=job.subject,
                zone=job.zone,
                spec=job.spec,
                meta=job.meta,
                state=job.state.value,
                once=job.once,
                attempts=0,
                created_at=from_epoch(now),
                updated_at=from_epoch(now),
            )
            session.add(row)
            await session.flush()
            written = _job(row)
            await session.execute(sa.insert(job_audit), [_audit_values(note.entry(written))])
        return written, True

    async def _live_with_key(self, queue: str, key: str) -> QueuedJob | None:
        async with self.db.session() as session:
            row = await session.scalar(
                sa.select(JobRow).where(
                    JobRow.queue == queue, JobRow.key == key, JobRow.state.in_(LIVE_STATES)
                )
            )
        return None if row is None else _job(row)

    async def update(
        self, job_id: int, *, expect: Sequence[JobState], change: Change, note: Note | None
    ) -> QueuedJob | None:
        c = jobs.c
        values: dict[str, Any] = {
            "state": change.state.value,
            "updated_at": from_epoch(change.updated_at),
        }
        for name, value in change.values.items():
            values[name] = from_epoch(value) if name in _TIMES and value is not None else value
        if change.count_attempt:
            values["attempts"] = c.attempts + 1
        async with self.db.begin() as session:
            result = await session.execute(
                sa.update(jobs)
                .where(c.id == job_id, c.state.in_([s.value for s in expect]))
                .values(**values)
                .returning(*jobs.c)
            )
            row = result.one_or_none()
            if row is None:
                return None
            moved = _job(JobRow(**row._asdict()))
            if note is not None:
                await session.execute(sa.insert(job_audit), [_audit_values(note.entry(moved))])
        return moved

    async def record_audit(self, entries: Sequence[AuditEntry]) -> None:
        if not entries:
            return
        async with self.db.begin() as session:
            await session.execute(sa.insert(job_audit), [_audit_values(e) for e in entries])

    async def get(self, job_id: int) -> QueuedJob | None:
        async with self.db.session() as session:
            row = await session.get(JobRow, job_id)
        return None if row is None else _job(row)

    async def list_jobs(
        self,
        queue: str,
        *,
        states: Iterable[JobState] | None = None,
        owner: str | None = None,
        subject: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[QueuedJob]:
        query = _jobs(queue, states, owner, subject).order_by(JobRow.id.desc()).offset(offset)
        if limit is not None:
            query = query.limit(limit)
        async with self.db.session() as session:
            return [_job(row) for row in await session.scalars(query)]

    async def count_jobs(
        self,
        queue: str,
        *,
        states: Iterable[JobState] | None = None,
        owner: str | None = None,
        subject: str | None = None,
    ) -> int:
        return await self._count(_jobs(queue, states, owner, subject))

    async def _count(self, query: sa.Select[Any]) -> int:
        async with self.db.session() as session:
            found = await session.scalar(sa.select(sa.func.count()).select_from(query.subquery()))
        return int(found or 0)

    async def dispatched_since(self, queue: str, since: float) -> list[QueuedJob]:
        query = (
            sa.select(JobRow)
            .where(JobRow.queue == queue, JobRow.dispatched_at >= from_epoch(since))
            .order_by(JobRow.dispatched_at)
        )
        async with self.db.session() as session:
            return [_job(row) for row in await session.scalars(query)]

    async def list_audit(
        self,
        queue: str,
        *,
        job_id: int | None = None,
        owner: str | None = None,
        subject: str | None = None,
        before_id: int | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[AuditEntry]:
        query = (
            _audit(queue, job_id, owner, subject, before_id)
            .order_by(JobAuditRow.id.desc())
            .limit(limit)
            .offset(offset)
        )
        async with self.db.session() as session:
            return [_entry(row) for row in await session.scalars(query)]

    async def count_audit(
        self,
        queue: str,
        *,
        job_id: int | None = None,
        owner: str | None = None,
        subject: str | None = None,
        before_id: int | None = None,
    ) -> int:
        return await self._count(_audit(queue, job_id, owner, subject, before_id))

    async def prune_audit(self, *, before: float) -> int:
        return await bulk.prune(self.db, job_audit, older_than=from_epoch(before))

    async def prune_jobs(self, queue: str, *, before: float) -> int:
        ended = sa.select(jobs.c.id).where(
            jobs.c.queue == queue,
            jobs.c.state.not_in(LIVE_STATES),
            jobs.c.finished_at < from_epoch(before),
        )
        try:
            async with self.db.begin() as session:
                await session.execute(
                    sa.delete(job_audit).where(
                        job_audit.c.queue == queue, job_audit.c.job_id.in_(ended)
                    )
                )
                done = await session.execute(sa.delete(jobs).where(jobs.c.id.in_(ended)))
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"cannot prune the {queue} jobs: {exc}") from exc
        return int(getattr(done, "rowcount", 0) or 0)


def _jobs(
    queue: str,
    states: Iterable[JobState] | None,
    owner: str | None,
    subject: str | None,
) -> sa.Select[Any]:
    query = sa.select(JobRow).where(JobRow.queue == queue)
    if states is not None:
        query = query.where(JobRow.state.in_([s.value for s in states]))
    if owner is not None:
        query = query.where(JobRow.owner == owner)
    if subject is not None:
        query = query.where(JobRow.subject == subject)
    return query


def _audit(
    queue: str,
    job_id: int | None,
    owner: str | None,
    subject: str | None,
    before_id: int | None,
) -> sa.Select[Any]:
    query = sa.select(JobAuditRow).where(JobAuditRow.queue == queue)
    if job_id is not None:
        query = query.where(JobAuditRow.job_id == job_id)
    if owner is not None:
        query = query.where(JobAuditRow.owner == owner)
    if subject is not None:
        query = query.where(JobAuditRow.subject == subject)
    if before_id is not None:
        query = query.where(JobAuditRow.id < before_id)
    return query
