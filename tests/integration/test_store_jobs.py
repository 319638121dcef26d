"""The job queue on SQLite and PostgreSQL (and its in-memory twin): moves happen once,
keys make enqueueing idempotent, the audit follows every move."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from watchkeeper import store
from watchkeeper.jobs.queue import AuditEntry, IllegalMove, JobQueue, NewJob, QueueConnector
from watchkeeper.jobs.states import JobState
from watchkeeper.jobs.testing import InMemoryConnector
from watchkeeper.store.jobs import SqlQueueConnector

T0 = 1_735_732_800.0


def new(
    state: JobState = JobState.QUEUED, target: str = "web1!http", key: str | None = None
) -> NewJob:
    return NewJob(
        kind="action",
        owner="restart",
        subject=target,
        zone="core",
        spec={"kind": "command", "command": ["true"]},
        meta={"host": "web1", "service": "http", "trigger": "CRITICAL"},
        state=state,
        key=key,
    )


@pytest.fixture(params=["sql", "memory"])
async def connector(request: pytest.FixtureRequest, db: store.Database) -> QueueConnector:
    return SqlQueueConnector(db) if request.param == "sql" else InMemoryConnector()


@pytest.fixture
async def queue(connector: QueueConnector) -> AsyncIterator[JobQueue]:
    yield JobQueue(connector, "remediation")


async def test_a_job_is_written_with_its_first_audit_entry(queue: JobQueue) -> None:
    job = await queue.enqueue(new(), now=T0, output="matched CRITICAL HARD")
    assert job.id > 0 and job.state is JobState.QUEUED and job.wire_id == f"rem-{job.id}"
    assert job.created_at == T0 and job.spec == {"kind": "command", "command": ["true"]}
    assert job.meta["trigger"] == "CRITICAL" and job.attempts == 0 and job.once
    assert await queue.get(job.id) == job
    [entry] = await queue.list_audit(job_id=job.id)
    assert (entry.event, entry.outcome, entry.output, entry.at, entry.owner, entry.subject) == (
        "queued", "queued", "matched CRITICAL HARD", T0, "restart", "web1!http",
    )  # fmt: skip


async def test_moves_are_conditional_so_only_one_decider_wins(queue: JobQueue) -> None:
    job = await queue.enqueue(new(JobState.PENDING), now=T0, output="pending")
    run = await queue.move(
        job.id, JobState.QUEUED, expect=[JobState.PENDING], now=T0 + 1, event="approved",
        note="run by ann", author="ann",
    )  # fmt: skip
    assert run is not None and run.state is JobState.QUEUED and run.decided_by == "ann"
    skip = await queue.move(
        job, JobState.SKIPPED, now=T0 + 2, event="skipped", note="skipped by bob", author="bob"
    )  # the caller's copy still says pending: the move finds nothing to do
    assert skip is None
    sent = await queue.move(
        run, JobState.DISPATCHED, now=T0 + 3, event="dispatched", note=None, lease_until=T0 + 70
    )
    assert sent is not None and sent.dispatched_at == T0 + 3 and sent.finished_at is None
    assert sent.lease_until == T0 + 70 and sent.attempts == 1
    done = await queue.move(
        sent, JobState.SUCCEEDED, now=T0 + 9, event="resolved", note="re-check OK",
        output="started\nre-check OK",
    )  # fmt: skip
    assert done is not None and done.finished_at == T0 + 9 and done.output == "started\nre-check OK"
    assert done.lease_until is None
    assert (
        await queue.move(
            999_999, JobState.SKIPPED, expect=[JobState.QUEUED], now=T0, event="skipped", note="x"
        )
        is None
    )
    events = [e.event for e in reversed(await queue.list_audit(job_id=job.id))]
    assert events == ["pending", "approved", "resolved"]  # "dispatched" had no note
    assert [j.id for j in await queue.dispatched_since(T0)] == [job.id]


async def test_a_move_the_table_forbids_is_refused_before_anything_is_written(
    queue: JobQueue,
) -> None:
    job = await queue.enqueue(new(), now=T0, output="q")
    with pytest.raises(IllegalMove, match="from queued to succeeded"):
        await queue.move(job, JobState.SUCCEEDED, now=T0 + 1, event="resolved", note="x")
    with pytest.raises(IllegalMove, match="starts pending or queued"):
        await queue.enqueue(new(JobState.DISPATCHED), now=T0, output="x")
    assert (await queue.get(job.id)) == job


async def test_put_back_clears_the_dispatch_time(queue: JobQueue) -> None:
    job = await queue.enqueue(new(), now=T0, output="q")
    sent = await queue.move(job, JobState.DISPATCHED, now=T0 + 1, event="dispatched", note=None)
    assert sent is not None
    back = await queue.move(sent, JobState.QUEUED, now=T0 + 2, event="requeued", note=None)
    assert back is not None and back.dispatched_at is None and back.lease_until is None
    assert await queue.dispatched_since(T0) == []


async def test_a_key_makes_one_live_job_and_frees_when_it_ends(queue: JobQueue) -> None:
    first = await queue.enqueue(new(key="restart|web1!http"), now=T0, output="a")
    again = await queue.enqueue(new(key="restart|web1!http"), now=T0 + 1, output="b")
    assert again == first
    other = await queue.enqueue(new(key="restart|web2!http"), now=T0 + 1, output="c")
    assert other.id != first.id
    await queue.move(first, JobState.SKIPPED, now=T0 + 2, event="skipped", note="done")
    later = await queue.enqueue(new(key="restart|web1!http"), now=T0 + 3, output="d")
    assert later.id not in (first.id, other.id)
    assert [e.output for e in reversed(await queue.list_audit())] == ["a", "c", "done", "d"]


async def test_listing_filters_and_audit_pages_newest_first(
    queue: JobQueue, connector: QueueConnector
) -> None:
    a = await queue.enqueue(new(), now=T0, output="a")
    b = await queue.enqueue(new(JobState.PENDING, "web2!http"), now=T0 + 1, output="b")
    await queue.record_audit(
        [
            AuditEntry(at=T0 + 2, queue="remediation", owner="restart", subject="*",
                       event="held", output="held: circuit breaker open (6 targets)"),
            AuditEntry(at=T0 + 3, queue="remediation", owner="restart", subject="web3!http",
                       event="cooldown", output="cooldown until 2025-01-01T12:10:00Z"),
        ],
    )  # fmt: skip
    other = JobQueue(connector, "infra")
    await other.enqueue(new(), now=T0 + 4, output="another queue")
    assert [j.id for j in await queue.list_jobs()] == [b.id, a.id]
    assert [j.id for j in await queue.list_jobs(states=[JobState.PENDING])] == [b.id]
    assert [j.id for j in await queue.list_jobs(subject="web1!http")] == [a.id]
    page = await queue.list_audit(limit=2)
    assert [e.event for e in page] == ["cooldown", "held"]
    rest = await queue.list_audit(before_id=page[-1].id)
    assert [e.output for e in rest] == ["b", "a"]
    held = await queue.list_audit(subject="*")
    assert held[0].output == "held: circuit breaker open (6 targets)"
    assert await connector.prune_audit(before=T0 + 2) == 2
    assert len(await queue.list_audit()) == 2
    assert [e.output for e in await other.list_audit()] == ["another queue"]
