"""Remediation jobs and audit on SQLite and PostgreSQL: states move once, audit follows."""

from __future__ import annotations

import pytest

from watchkeeper import store
from watchkeeper.store import remediation as rstore
from watchkeeper.store.remediation import AuditEntry, JobState, NewJob

T0 = 1_735_732_800.0


def new(state: JobState = JobState.QUEUED, target: str = "web1!http") -> NewJob:
    return NewJob(
        rule="restart",
        target=target,
        host="web1",
        service="http",
        zone="core",
        action={"kind": "command", "command": ["true"]},
        trigger="CRITICAL",
        state=state,
    )


async def test_a_job_is_written_with_its_first_audit_entry(db: store.Database) -> None:
    job = await rstore.create_job(db, new(), now=T0, output="matched CRITICAL HARD")
    assert job.id > 0 and job.state is JobState.QUEUED and job.wire_id == f"rem-{job.id}"
    assert job.created_at == T0 and job.action == {"kind": "command", "command": ["true"]}
    async with db.session() as session:
        assert await rstore.get_job(session, job.id) == job
        [entry] = await rstore.list_audit(session, job_id=job.id)
    assert (entry.event, entry.outcome, entry.output, entry.at) == (
        "queued", "queued", "matched CRITICAL HARD", T0,
    )  # fmt: skip


async def test_transitions_are_conditional_so_only_one_decider_wins(db: store.Database) -> None:
    job = await rstore.create_job(db, new(JobState.PENDING), now=T0, output="pending")
    run = await rstore.transition(
        db, job.id, from_states=[JobState.PENDING], to=JobState.QUEUED, now=T0 + 1,
        event="approved", audit_output="run by ann", author="ann",
    )  # fmt: skip
    assert run is not None and run.state is JobState.QUEUED and run.decided_by == "ann"
    skip = await rstore.transition(
        db, job.id, from_states=[JobState.PENDING], to=JobState.SKIPPED, now=T0 + 2,
        event="skipped", audit_output="skipped by bob", author="bob",
    )  # fmt: skip
    assert skip is None
    sent = await rstore.transition(
        db, job.id, from_states=[JobState.QUEUED], to=JobState.DISPATCHED, now=T0 + 3,
        event="dispatched", audit_output=None, dispatched=True,
    )  # fmt: skip
    assert sent is not None and sent.dispatched_at == T0 + 3 and sent.finished_at is None
    done = await rstore.transition(
        db, job.id, from_states=[JobState.DISPATCHED], to=JobState.SUCCEEDED, now=T0 + 9,
        event="resolved", audit_output="re-check OK", output="started\nre-check OK",
    )  # fmt: skip
    assert done is not None and done.finished_at == T0 + 9 and done.output == "started\nre-check OK"
    assert await rstore.transition(
        db, 999_999, from_states=[JobState.QUEUED], to=JobState.SKIPPED, now=T0,
        event="skipped", audit_output="x",
    ) is None  # fmt: skip
    async with db.session() as session:
        events = [e.event for e in reversed(await rstore.list_audit(session, job_id=job.id))]
        history = await rstore.attempts_since(session, T0)
    assert events == ["pending", "approved", "resolved"]  # "dispatched" had no audit_output
    assert [j.id for j in history] == [job.id]


async def test_put_back_clears_the_dispatch_time(db: store.Database) -> None:
    job = await rstore.create_job(db, new(), now=T0, output="q")
    await rstore.transition(
        db, job.id, from_states=[JobState.QUEUED], to=JobState.DISPATCHED, now=T0 + 1,
        event="dispatched", audit_output=None, dispatched=True,
    )  # fmt: skip
    back = await rstore.transition(
        db, job.id, from_states=[JobState.DISPATCHED], to=JobState.QUEUED, now=T0 + 2,
        event="requeued", audit_output=None, dispatched=False,
    )  # fmt: skip
    assert back is not None and back.dispatched_at is None
    async with db.session() as session:
        assert await rstore.attempts_since(session, T0) == []


async def test_listing_filters_and_audit_pages_newest_first(db: store.Database) -> None:
    a = await rstore.create_job(db, new(), now=T0, output="a")
    b = await rstore.create_job(db, new(JobState.PENDING, "web2!http"), now=T0 + 1, output="b")
    await rstore.record_audit(
        db,
        [
            AuditEntry(at=T0 + 2, rule="restart", target="*", event="held",
                       output="held: circuit breaker open (6 targets)"),
            AuditEntry(at=T0 + 3, rule="restart", target="web3!http", event="cooldown",
                       output="cooldown until 2025-01-01T12:10:00Z"),
        ],
    )  # fmt: skip
    async with db.session() as session:
        assert [j.id for j in await rstore.list_jobs(session)] == [b.id, a.id]
        pending = await rstore.list_jobs(session, states=[JobState.PENDING])
        assert [j.id for j in pending] == [b.id]
        assert [j.id for j in await rstore.list_jobs(session, target="web1!http")] == [a.id]
        page = await rstore.list_audit(session, limit=2)
        assert [e.event for e in page] == ["cooldown", "held"]
        rest = await rstore.list_audit(session, before_id=page[-1].id)
        assert [e.output for e in rest] == ["b", "a"]
        held = await rstore.list_audit(session, target="*")
        assert held[0].as_dict()["output"] == "held: circuit breaker open (6 targets)"
    assert await rstore.prune_audit(db, before=T0 + 2) == 2
    async with db.session() as session:
        assert len(await rstore.list_audit(session)) == 2


@pytest.mark.parametrize("state", [s for s in JobState])
def test_final_states(state: JobState) -> None:
    live = {JobState.PENDING, JobState.QUEUED, JobState.DISPATCHED, JobState.VERIFYING}
    assert state.final is (state not in live)
