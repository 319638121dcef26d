"""An in-memory `QueueConnector`, shipped beside the real one (as procrastinate does).

It keeps the same promises as the store's: a key is unique among a queue's live jobs, a
move happens only from the expected states, audit entries are written with their move.
For tests of stages and for a queue that needs no database.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from watchkeeper.jobs.queue import AuditEntry, Change, NewJob, Note, QueuedJob
from watchkeeper.jobs.states import LIVE, JobState


class InMemoryConnector:
    """Jobs and audit in dicts; ``audit`` is the whole trail, oldest first."""

    def __init__(self) -> None:
        self.jobs: dict[int, QueuedJob] = {}
        self.audit: list[AuditEntry] = []

    def _write(self, entry: AuditEntry) -> None:
        self.audit.append(dataclasses.replace(entry, id=len(self.audit) + 1))

    async def insert(
        self, queue: str, job: NewJob, *, now: float, note: Note
    ) -> tuple[QueuedJob, bool]:
        if job.key is not None:
            for found in self.jobs.values():
                if found.queue == queue and found.key == job.key and found.state in LIVE:
                    return found, False
        written = QueuedJob(
            id=max(self.jobs, default=0) + 1, queue=queue, kind=job.kind, key=job.key,
            owner=job.owner, subject=job.subject, zone=job.zone, spec=dict(job.spec),
            meta=dict(job.meta),
            state=job.state, once=job.once, created_at=now, updated_at=now,
        )  # fmt: skip
        self.jobs[written.id] = written
        self._write(note.entry(written))
        return written, True

    async def update(
        self, job_id: int, *, expect: Sequence[JobState], change: Change, note: Note | None
    ) -> QueuedJob | None:
        found = self.jobs.get(job_id)
        if found is None or found.state not in expect:
            return None
        moved = dataclasses.replace(
            found,
            state=change.state,
            updated_at=change.updated_at,
            attempts=found.attempts + (1 if change.count_attempt else 0),
            **change.values,
        )
        self.jobs[job_id] = moved
        if note is not None:
            self._write(note.entry(moved))
        return moved

    async def record_audit(self, entries: Sequence[AuditEntry]) -> None:
        for entry in entries:
            self._write(entry)

    async def get(self, job_id: int) -> QueuedJob | None:
        return self.jobs.get(job_id)

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
        found = self._jobs(queue, states, owner, subject)[offset:]
        return found if limit is None else found[:limit]

    async def count_jobs(
        self,
        queue: str,
        *,
        states: Iterable[JobState] | None = None,
        owner: str | None = None,
        subject: str | None = None,
    ) -> int:
        return len(self._jobs(queue, states, owner, subject))

    def _jobs(
        self,
        queue: str,
        states: Iterable[JobState] | None,
        owner: str | None,
        subject: str | None,
    ) -> list[QueuedJob]:
        wanted = None if states is None else set(states)
        return [
            j
            for j in sorted(self.jobs.values(), key=lambda j: -j.id)
            if j.queue == queue
            and (wanted is None or j.state in wanted)
            and (owner is None or j.owner == owner)
            and (subject is None or j.subject == subject)
        ]

    async def dispatched_since(self, queue: str, since: float) -> list[QueuedJob]:
        found = [
            j
            for j in self.jobs.values()
            if j.queue == queue and j.dispatched_at is not None and j.dispatched_at >= since
        ]
        return sorted(found, key=lambda j: j.dispatched_at or 0.0)

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
        return self._audit(queue, job_id, owner, subject, before_id)[offset : offset + limit]

    async def count_audit(
        self,
        queue: str,
        *,
        job_id: int | None = None,
        owner: str | None = None,
        subject: str | None = None,
        before_id: int | None = None,
    ) -> int:
        return len(self._audit(queue, job_id, owner, subject, before_id))

    def _audit(
        self,
        queue: str,
        job_id: int | None,
        owner: str | None,
        subject: str | None,
        before_id: int | None,
    ) -> list[AuditEntry]:
        return [
            e
            for e in reversed(self.audit)
            if e.queue == queue
            and (job_id is None or e.job_id == job_id)
            and (owner is None or e.owner == owner)
            and (subject is None or e.subject == subject)
            and (before_id is None or e.id < before_id)
        ]

    async def prune_audit(self, *, before: float) -> int:
        kept = [e for e in self.audit if e.at >= before]
        pruned, self.audit = len(self.audit) - len(kept), kept
        return pruned

    async def prune_jobs(self, queue: str, *, before: float) -> int:
        gone = {
            j.id
            for j in self.jobs.values()
            if j.queue == queue and j.state.final and (j.finished_at or before) < before
        }
        self.jobs = {i: j for i, j in self.jobs.items() if i not in gone}
        self.audit = [e for e in self.audit if not (e.queue == queue and e.job_id in gone)]
        return len(gone)
