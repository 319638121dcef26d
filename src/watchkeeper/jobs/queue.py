"""The persisted job queue: at most once, leased, idempotent by key, every move audited.

    JobQueue(connector, "remediation")
      enqueue(NewJob)     written before anything is sent; a live job with the same key
                          is returned instead of a second one (idempotency)
      move(job, to)       one allowed move (`states.TRANSITIONS`), as a conditional update:
                          when two deciders race (the dispatch loop and an operator), the
                          second finds nothing to move and is told so (None)
      audit / list / get  the trail and the jobs, for the stage and the API

The queue is pure logic over a `QueueConnector`, the narrow I/O seam: the store's SQL
implementation (`watchkeeper.store.jobs.SqlQueueConnector`) on SQLite or PostgreSQL, or
the in-memory one of `watchkeeper.jobs.testing`. Several stages share the table, each
under its own queue name (``remediation`` now; infrastructure and deployments next).

What a move does to a job besides its state follows from the move alone (`change_for`):
dispatching stamps ``dispatched_at``, counts an attempt and sets the lease; a requeue
clears them; a final state stamps ``finished_at``. Times are epoch seconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from watchkeeper.errors import WatchkeeperError
from watchkeeper.jobs.states import JobState, allowed


class IllegalMove(WatchkeeperError):
    """A job was asked to move where the transition table does not allow (a bug)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class QueuedJob:
    """One job of one queue, as stored."""

    id: int
    queue: str
    #: What it becomes on the wire: a payload kind (``action``).
    kind: str
    #: Unique among the live jobs of its queue: a second enqueue returns this one.
    key: str | None
    #: What made it: a remediation rule, an infrastructure resource.
    owner: str
    #: What it acts on: a check key, a slot.
    subject: str
    zone: str
    #: The work, as JSON of the document (an action object).
    spec: dict[str, Any]
    #: The owner's own facts about it (a remediation's host, service and trigger).
    meta: dict[str, Any]
    state: JobState
    #: At most once: never sent again once it may have run.
    once: bool = True
    #: How often it was dispatched.
    attempts: int = 0
    created_at: float
    updated_at: float
    dispatched_at: float | None = None
    finished_at: float | None = None
    #: While dispatched: when the worker's lease lapses without an answer.
    lease_until: float | None = None
    worker: str | None = None
    output: str | None = None
    #: Who approved or skipped it, or ``system``.
    decided_by: str | None = None

    @property
    def wire_id(self) -> str:
        """The job id on the wire: unique per job, the same if it is submitted again."""
        return f"{self.queue[:3]}-{self.id}"

    def log_context(self) -> dict[str, Any]:
        return {"id": self.id, "queue": self.queue, "owner": self.owner, "subject": self.subject}


@dataclass(frozen=True, slots=True, kw_only=True)
class NewJob:
    """A job to write: what a stage knows when it decides to act."""

    kind: str
    owner: str
    subject: str
    zone: str
    spec: dict[str, Any]
    state: JobState = JobState.QUEUED
    key: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    once: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEntry:
    """One step of a job, or one decision that made none; ``id`` is 0 until stored."""

    at: float
    queue: str
    owner: str
    #: A subject, or ``*`` for a decision about the whole owner (a circuit breaker).
    subject: str
    event: str
    output: str
    job_id: int | None = None
    #: The job's state after the step, when it has one.
    outcome: str | None = None
    worker: str | None = None
    author: str | None = None
    id: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Note:
    """The audit entry of one move, before it is known which job row it lands on: the
    connector completes it from the job (queue, owner, subject, worker, the new state)."""

    at: float
    event: str
    output: str
    author: str | None = None

    def entry(self, job: QueuedJob) -> AuditEntry:
        return AuditEntry(
            at=self.at,
            queue=job.queue,
            owner=job.owner,
            subject=job.subject,
            event=self.event,
            output=self.output,
            job_id=job.id,
            outcome=job.state.value,
            worker=job.worker,
            author=self.author,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    """What one move writes: the new state and the fields that follow from the move."""

    state: JobState
    updated_at: float
    #: Field name -> value, for the fields this move sets (None clears).
    values: dict[str, Any]
    #: Count one more dispatch.
    count_attempt: bool = False


def change_for(
    source: Iterable[JobState],
    to: JobState,
    *,
    now: float,
    output: str | None = None,
    worker: str | None = None,
    author: str | None = None,
    lease_until: float | None = None,
) -> Change:
    """The change of a move from any of ``source`` to ``to``; `IllegalMove` if one may not."""
    sources = list(source)
    refused = [s.value for s in sources if not allowed(s, to)]
    if refused or not sources:
        raise IllegalMove(
            f"a job may not move from {', '.join(refused) or 'nowhere'} to {to.value}"
        )
    values: dict[str, Any] = {}
    if output is not None:
        values["output"] = output
    if worker is not None:
        values["worker"] = worker
    if author is not None:
        values["decided_by"] = author
    if to is JobState.DISPATCHED:
        values["dispatched_at"] = now
        values["lease_until"] = lease_until
    elif JobState.DISPATCHED in sources:
        values["lease_until"] = None
        if to is JobState.QUEUED:  # nobody took it: it did not run
            values["dispatched_at"] = None
    if to.final:
        values["finished_at"] = now
    return Change(state=to, updated_at=now, values=values, count_attempt=to is JobState.DISPATCHED)


class QueueConnector(Protocol):
    """Where the queue keeps its jobs and trail. One per process, shared by every queue.

    Each write is one transaction: a job and its audit entry are written together or not
    at all.
    """

    async def insert(
        self, queue: str, job: NewJob, *, now: float, note: Note
    ) -> tuple[QueuedJob, bool]:
        """Write ``job`` with ``note``, or return the live job of ``queue`` with its key
        (writing nothing); and whether it was written."""
        ...

    async def update(
        self, job_id: int, *, expect: Sequence[JobState], change: Change, note: Note | None
    ) -> QueuedJob | None:
        """Apply ``change`` (and write ``note``) if the job is in one of ``expect``; the
        job after, or None."""
        ...

    async def record_audit(self, entries: Sequence[AuditEntry]) -> None: ...

    async def get(self, job_id: int) -> QueuedJob | None: ...

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
        """Jobs of ``queue``, newest first."""
        ...

    async def count_jobs(
        self,
        queue: str,
        *,
        states: Iterable[JobState] | None = None,
        owner: str | None = None,
        subject: str | None = None,
    ) -> int:
        """How many jobs `list_jobs` would give without a limit."""
        ...

    async def dispatched_since(self, queue: str, since: float) -> list[QueuedJob]:
        """Jobs of ``queue`` dispatched at or after ``since``, oldest first."""
        ...

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
        """Audit entries of ``queue``, newest first; page with ``before_id`` or ``offset``."""
        ...

    async def count_audit(
        self,
        queue: str,
        *,
        job_id: int | None = None,
        owner: str | None = None,
        subject: str | None = None,
        before_id: int | None = None,
    ) -> int:
        """How many entries `list_audit` would give without a limit."""
        ...

    async def prune_audit(self, *, before: float) -> int:
        """Delete audit entries older than ``before`` (every queue); how many went."""
        ...

    async def prune_jobs(self, queue: str, *, before: float) -> int:
        """Delete the jobs of ``queue`` that ended before ``before``, with their audit
        entries (a queue of routine jobs, such as observations); how many jobs went."""
        ...


class JobQueue:
    """One queue of the shared table (``name``), over a connector."""

    def __init__(self, connector: QueueConnector, name: str) -> None:
        self.connector = connector
        self.name = name

    async def enqueue(
        self, new: NewJob, *, now: float, output: str, event: str | None = None
    ) -> QueuedJob:
        """Write a job with its first audit entry (``event``, by default its state).

        With a key already held by a live job of this queue, that job is returned and
        nothing is written: enqueueing twice (a retry, a restart) makes one job.
        """
        if new.state not in (JobState.PENDING, JobState.QUEUED):
            raise IllegalMove(f"a job starts pending or queued, not {new.state.value}")
        note = Note(at=now, event=event or new.state.value, output=output)
        job, _ = await self.connector.insert(self.name, new, now=now, note=note)
        return job

    async def move(
        self,
        job: QueuedJob | int,
        to: JobState,
        *,
        now: float,
        event: str,
        note: str | None,
        expect: Iterable[JobState] | None = None,
        output: str | None = None,
        worker: str | None = None,
        author: str | None = None,
        lease_until: float | None = None,
    ) -> QueuedJob | None:
        """Move a job to ``to`` if it is still where the caller thinks (``expect``; by
        default the state of the ``job`` given), auditing ``note`` as ``event``.

        None when it was elsewhere (someone moved it first) or does not exist: then
        nothing is written. ``note`` None writes no audit entry (the caller audits once
        the step is certain).
        """
        if isinstance(job, QueuedJob):
            job_id, states = job.id, list(expect) if expect is not None else [job.state]
        else:
            if expect is None:
                raise IllegalMove("moving a job by id needs the states it is expected in")
            job_id, states = job, list(expect)
        change = change_for(
            states, to, now=now, output=output, worker=worker, author=author,
            lease_until=lease_until,
        )  # fmt: skip
        written = None if note is None else Note(at=now, event=event, output=note, author=author)
        return await self.connector.update(job_id, expect=states, change=change, note=written)

    async def record_audit(self, entries: Sequence[AuditEntry]) -> None:
        """Decisions that moved no job (holds, circuit breakers), in one transaction."""
        if entries:
            await self.connector.record_audit(entries)

    async def get(self, job_id: int) -> QueuedJob | None:
        found = await self.connector.get(job_id)
        return found if found is not None and found.queue == self.name else None

    async def list_jobs(
        self,
        *,
        states: Iterable[JobState] | None = None,
        owner: str | None = None,
        subject: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[QueuedJob]:
        return await self.connector.list_jobs(
            self.name, states=states, owner=owner, subject=subject, limit=limit, offset=offset
        )

    async def count_jobs(
        self,
        *,
        states: Iterable[JobState] | None = None,
        owner: str | None = None,
        subject: str | None = None,
    ) -> int:
        return await self.connector.count_jobs(
            self.name, states=states, owner=owner, subject=subject
        )

    async def dispatched_since(self, since: float) -> list[QueuedJob]:
        return await self.connector.dispatched_since(self.name, since)

    async def list_audit(
        self,
        *,
        job_id: int | None = None,
        owner: str | None = None,
        subject: str | None = None,
        before_id: int | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[AuditEntry]:
        return await self.connector.list_audit(
            self.name, job_id=job_id, owner=owner, subject=subject, before_id=before_id,
            limit=limit, offset=offset,
        )  # fmt: skip

    async def count_audit(
        self,
        *,
        job_id: int | None = None,
        owner: str | None = None,
        subject: str | None = None,
        before_id: int | None = None,
    ) -> int:
        return await self.connector.count_audit(
            self.name, job_id=job_id, owner=owner, subject=subject, before_id=before_id
        )
