"""The remediation service with a fake runner, a real SQLite store and a clock the test moves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from watchkeeper import store
from watchkeeper.document.normalize import CheckRecord, ObjectRecord
from watchkeeper.engine import CheckStatus, StateType
from watchkeeper.engine.observed import CheckResult, Observed
from watchkeeper.jobs.payloads import ActionPayload
from watchkeeper.jobs.states import JobState
from watchkeeper.notify.notification import Notification, NotificationKind
from watchkeeper.remediation import records
from watchkeeper.remediation.service import (
    ActionDone,
    RemediationJobConflict,
    RemediationJobNotFound,
    RemediationService,
    RemediationSettings,
)
from watchkeeper.results import CheckOutcome, CheckState
from watchkeeper.transport.protocol import Job, Result

T0 = 1_735_732_800.0


class FakeRunner:
    """Takes action jobs while ``accepting``; records check_now calls."""

    def __init__(self) -> None:
        self.jobs: list[tuple[Job, ActionDone]] = []
        self.accepting = True
        self.checked: list[str] = []

    async def submit_action(self, job: Job, done: ActionDone) -> bool:
        if not self.accepting:
            return False
        self.jobs.append((job, done))
        return True

    def check_now(self, key: str) -> bool:
        self.checked.append(key)
        return True


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def record(host: str, service: str | None = "http", **spec: Any) -> CheckRecord:
    key = host if service is None else f"{host}!{service}"
    full = {"address": "127.0.0.1", "labels": {"role": "web"}, "notifications": ["ops"],
            "timeout": 5.0, **spec}  # fmt: skip
    return CheckRecord(key=key, host=host, service=service, zone="core", hash="h", spec=full)


def status(
    key: str, state: CheckState, *, hard: bool = True, host_problem: bool = False
) -> CheckStatus:
    return CheckStatus(
        key=key,
        state=state,
        state_type=StateType.HARD if hard else StateType.SOFT,
        output=f"{state.name} - test",
        pending=False,
        host_problem=host_problem,
        last_state_change=T0,
        last_hard_change=T0,
    )


def rule(**fields: Any) -> ObjectRecord:
    spec = {"name": "restart", "when": {"service": "http"},
            "action": {"kind": "command", "command": ["restart-it"]},
            "notifications": ["pager"], "cooldown": "10m", "max_attempts": 2, **fields}  # fmt: skip
    return ObjectRecord(kind="remediations", name=spec["name"], hash="h", spec=spec)


class Setup:
    def __init__(self, db: store.Database, tmp_path: Path) -> None:
        self.db = db
        self.runner = FakeRunner()
        self.clock = Clock()
        self.notes: list[Notification] = []
        self.silence: dict[str, str] = {}
        self.service = self.make()
        self.records: dict[str, CheckRecord] = {}

    def make(self, **settings: Any) -> RemediationService:
        return RemediationService(
            self.db,
            self.runner,
            self.notes.append,
            silenced=lambda key, now: self.silence.get(key),
            settings=RemediationSettings(**settings),
            clock=self.clock,
        )

    def checks(self, *records: CheckRecord) -> None:
        self.records = {r.key: r for r in records}
        self.service.observe(Observed(checks=self.records), self.clock.now)

    def states(self, *statuses: CheckStatus) -> None:
        self.service.observe(Observed(statuses=statuses), self.clock.now)

    def result(self, key: str, state: CheckState, output: str = "") -> None:
        outcome = CheckOutcome(state=state, output=output or f"{state.name} - recheck")
        self.service.observe(
            Observed(
                results=(CheckResult(key=key, record=self.records[key], outcome=outcome,
                                     raw=outcome, at=self.clock.now),),
                statuses=(status(key, state),),
            ),
            self.clock.now,
        )  # fmt: skip

    async def step(self, advance: float = 0.0) -> None:
        self.clock.now += advance
        await self.service.step()

    async def audit(self, target: str | None = None) -> list[tuple[str, str]]:
        entries = await self.service.queue.list_audit(subject=target, limit=1000)
        return [(e.event, e.output) for e in reversed(entries)]

    async def jobs(self) -> list[records.RemediationJob]:
        return list(reversed(await records.list_jobs(self.service.queue)))


@pytest.fixture
async def s(tmp_path: Path) -> AsyncIterator[Setup]:
    db = store.Database.for_data_dir(tmp_path)
    await db.migrate()
    setup = Setup(db, tmp_path)
    await setup.service.load()
    yield setup
    await db.aclose()


def ok(job: Job, output: str = "restarted") -> Result:
    return Result(job_id=job.job_id, token=0, state=0, output=output, started=0, finished=0)


async def test_a_hard_problem_is_persisted_dispatched_rechecked_and_resolved(s: Setup) -> None:
    s.service.configure([rule()])
    s.checks(record("web1"))
    s.states(status("web1!http", CheckState.CRITICAL))
    await s.step()
    [(job, done)] = s.runner.jobs
    [stored] = await s.jobs()
    assert stored.state is JobState.DISPATCHED and job.job_id == f"rem-{stored.id}"
    assert (job.zone, job.token, job.once) == ("core", 0, True)
    assert job.payload == ActionPayload(action={"kind": "command", "command": ["restart-it"]},
                                        address="127.0.0.1", host="web1", service="http",
                                        timeout=60.0)  # fmt: skip
    assert job.deadline == T0 + 65.0
    done(ok(job), None, "w1")
    await s.step(2)
    assert s.runner.checked == ["web1!http"]
    verifying = (await s.jobs())[0]
    assert verifying.state is JobState.VERIFYING and verifying.worker == "w1"
    s.clock.now += 1
    s.result("web1!http", CheckState.OK, "TCP OK")
    await s.step()
    [final] = await s.jobs()
    assert final.state is JobState.SUCCEEDED and final.output == "restarted\nre-check OK: TCP OK"
    assert [event for event, _ in await s.audit()] == [
        "queued", "dispatched", "action_succeeded", "resolved",
    ]  # fmt: skip
    assert s.notes == []
    await s.step(1)
    assert len(s.runner.jobs) == 1  # recovered: nothing more


async def test_failure_escalates_then_cooldown_then_max_attempts(s: Setup) -> None:
    s.service.configure([rule()])
    s.checks(record("web1"))
    s.states(status("web1!http", CheckState.CRITICAL))
    await s.step()
    job, done = s.runner.jobs[-1]
    done(Result(job_id=job.job_id, token=0, state=2, output="COMMAND FAILED (exit status 1)",
                started=0, finished=0), None, "w1")  # fmt: skip
    await s.step(1)
    s.result("web1!http", CheckState.CRITICAL, "connection refused")
    await s.step(1)
    assert (await s.jobs())[0].state is JobState.FAILED
    [note] = s.notes
    assert note.kind is NotificationKind.REMEDIATION and note.channels == ("pager", "ops")
    assert note.output == "remediation restart failed: re-check still CRITICAL: connection refused"
    assert note.details["further"] == "a further attempt may run after the cooldown (600s)"
    await s.step(60)
    await s.step(60)
    assert len(s.runner.jobs) == 1
    audit = await s.audit()
    assert audit[-1] == ("cooldown", "cooldown until 2025-01-01T12:10:02Z")
    assert [e for e, _ in audit].count("cooldown") == 1  # audited once, not every tick
    s.clock.now = T0 + 602
    await s.step()
    assert len(s.runner.jobs) == 2  # the second attempt, the problem being still there
    job, done = s.runner.jobs[-1]
    done(None, "no worker for zone core", None)  # lost: the re-check decides
    await s.step(1)
    s.result("web1!http", CheckState.CRITICAL)
    await s.step(1)
    assert [j.state for j in await s.jobs()] == [JobState.FAILED, JobState.FAILED]
    assert s.notes[-1].details["further"].startswith("no further attempts: max attempts reached")
    await s.step(700)
    assert len(s.runner.jobs) == 2
    assert (await s.audit())[-1][0] == "max_attempts"


async def test_soft_problems_host_problems_and_other_states_do_not_match(s: Setup) -> None:
    s.service.configure([rule()])
    s.checks(record("web1"), record("web2"), record("web3"))
    s.states(
        status("web1!http", CheckState.CRITICAL, hard=False),
        status("web2!http", CheckState.CRITICAL, host_problem=True),
        status("web3!http", CheckState.WARNING),
    )
    await s.step()
    assert s.runner.jobs == [] and await s.audit() == []


async def test_a_silenced_target_is_skipped_once_and_acted_on_when_the_silence_ends(
    s: Setup,
) -> None:
    s.service.configure([rule()])
    s.checks(record("web1"))
    s.silence["web1!http"] = "in downtime until 13:00 (by ann)"
    s.states(status("web1!http", CheckState.CRITICAL))
    await s.step()
    await s.step(1)
    assert s.runner.jobs == []
    assert await s.audit() == [("silenced", "silenced: in downtime until 13:00 (by ann)")]
    del s.silence["web1!http"]
    await s.step(1)
    assert len(s.runner.jobs) == 1


async def test_circuit_breaker_notifies_once_per_trip_and_closes(s: Setup) -> None:
    s.service.configure([rule(circuit_breaker=2)])
    webs = [record(f"web{i}") for i in range(1, 5)]
    s.checks(*webs)
    s.states(*(status(r.key, CheckState.CRITICAL) for r in webs[:3]))
    await s.step()
    await s.step(1)
    assert s.runner.jobs == [] and s.service.breaker_open("restart")
    [note] = s.notes
    assert note.state == "HELD" and note.key == "remediation:restart"
    assert note.details["count"] == 3 and note.channels == ("pager", "ops")
    assert await s.audit() == [("held", "held: circuit breaker open (3 targets)")]
    s.states(status(webs[3].key, CheckState.CRITICAL))
    await s.step(1)
    assert len(s.notes) == 1  # still the same trip
    s.states(*(status(r.key, CheckState.OK) for r in webs[:3]))
    await s.step(1)
    assert not s.service.breaker_open("restart")
    assert ("circuit_closed", "circuit breaker closed (1 targets, limit 2)") in await s.audit()
    assert [j.job_id for j, _ in s.runner.jobs] == [s.runner.jobs[0][0].job_id]
    assert s.runner.jobs[0][0].payload.host == "web4"


async def test_concurrency_per_rule_and_global(tmp_path: Path, s: Setup) -> None:
    s.service.configure([rule(max_concurrent=2)])
    webs = [record(f"web{i}") for i in range(1, 5)]
    s.checks(*webs)
    s.states(*(status(r.key, CheckState.CRITICAL) for r in webs))
    await s.step()
    assert len(s.runner.jobs) == 2
    assert [j.state for j in await s.jobs()].count(JobState.QUEUED) == 2
    job, done = s.runner.jobs[0]
    done(ok(job), None, "w1")
    await s.step(1)
    s.result(job.payload.host + "!http", CheckState.OK)
    await s.step(1)
    assert len(s.runner.jobs) == 3  # a slot freed

    s.clock.now += 1000  # past the deadlines of the jobs the first service left running
    other = s.make(global_concurrency=1)
    await other.load()
    other.configure([rule(max_concurrent=5, name="other")])
    other.observe(Observed(checks=s.records), s.clock.now)
    fresh = CheckOutcome(state=CheckState.CRITICAL, output="CRITICAL - still")
    other.observe(
        Observed(
            results=tuple(
                CheckResult(key=r.key, record=r, outcome=fresh, raw=fresh, at=s.clock.now)
                for r in webs
            ),
            statuses=tuple(status(r.key, CheckState.CRITICAL) for r in webs),
        ),
        s.clock.now,
    )  # fmt: skip  (results of its own run: the jobs the store holds are then known)
    before = len(s.runner.jobs)
    await other.step()
    assert len(s.runner.jobs) == before + 1


async def test_confirm_rules_wait_for_an_operator(s: Setup) -> None:
    s.service.configure([rule(confirm=True)])
    s.checks(record("web1"), record("web2"))
    s.states(status("web1!http", CheckState.CRITICAL), status("web2!http", CheckState.CRITICAL))
    await s.step()
    assert s.runner.jobs == []
    first, second = await s.jobs()
    assert first.state is JobState.PENDING
    run = await s.service.run_pending(first.id, "ann")
    assert run.state is JobState.QUEUED and run.decided_by == "ann"
    skipped = await s.service.skip_pending(second.id, "bob", "known issue")
    assert skipped.state is JobState.SKIPPED and skipped.output == "skipped by bob: known issue"
    with pytest.raises(RemediationJobConflict, match="it is skipped"):
        await s.service.run_pending(second.id, "ann")
    with pytest.raises(RemediationJobNotFound):
        await s.service.skip_pending(12345, "ann")
    await s.step(1)
    assert [j.payload.host for j, _ in s.runner.jobs] == ["web1"]
    await s.step(1)
    assert [j.state for j in await s.jobs()] == [JobState.DISPATCHED, JobState.SKIPPED]
    audit = await s.audit("web2!http")
    assert audit[-1] == ("skipped", "skipped by bob: known issue")  # and no new job for it


async def test_pending_jobs_expire_and_are_skipped_when_the_target_recovers(s: Setup) -> None:
    s.service = s.make(pending_ttl=100.0)
    await s.service.load()
    s.service.configure([rule(confirm=True)])
    s.checks(record("web1"), record("web2"))
    s.states(status("web1!http", CheckState.CRITICAL), status("web2!http", CheckState.CRITICAL))
    await s.step()
    s.states(status("web2!http", CheckState.OK))
    await s.step(1)
    await s.step(200)
    first, second = await s.jobs()
    assert first.state is JobState.EXPIRED and second.state is JobState.SKIPPED
    assert s.notes[-1].output == "remediation restart expired: expired: not confirmed within 100s"


async def test_without_a_worker_the_job_stays_queued_and_retries_quietly(s: Setup) -> None:
    s.service.configure([rule()])
    s.checks(record("web1"))
    s.states(status("web1!http", CheckState.CRITICAL))
    s.runner.accepting = False
    for _ in range(5):
        await s.step(0.3)
    [job] = await s.jobs()
    assert job.state is JobState.QUEUED and job.dispatched_at is None
    assert [e for e, _ in await s.audit()] == ["queued"]
    s.runner.accepting = True
    await s.step(60)
    assert len(s.runner.jobs) == 1
    assert [e for e, _ in await s.audit()] == ["queued", "dispatched"]


async def restarted(s: Setup, *saved: CheckStatus, **fields: Any) -> None:
    """The manager stops here; a new service on the same store takes over, and the store's
    saved states are ``saved`` (a kill -9 may have lost the newest)."""
    s.runner = FakeRunner()
    s.service = s.make()
    s.service.configure([rule(max_concurrent=1, **fields)])
    s.checks(*s.records.values())
    s.states(*saved)
    await s.service.load()


async def test_after_a_restart_nothing_is_decided_on_saved_states_until_a_fresh_result(
    s: Setup,
) -> None:
    """The job that was running is verified, never sent again; the queued one waits; the
    audit says only what happened."""
    s.service.configure([rule(max_concurrent=1, cooldown="20s")])
    s.checks(record("web1"), record("web2"))
    s.states(status("web1!http", CheckState.CRITICAL), status("web2!http", CheckState.CRITICAL))
    await s.step()
    assert len(s.runner.jobs) == 1  # web1 went, web2 waits for the slot
    # Killed: what the store saved is older than the truth (both still CRITICAL there,
    # though web1's action fixed it and web2 is fine too).
    await restarted(
        s,
        status("web1!http", CheckState.CRITICAL),
        status("web2!http", CheckState.CRITICAL),
        cooldown="20s",
    )
    for _ in range(2):
        await s.step(21)  # past the rule's cooldown: stale states would open new jobs
    first, second = await s.jobs()
    assert (first.state, second.state) == (JobState.VERIFYING, JobState.QUEUED)
    assert s.runner.jobs == [] and len(await s.jobs()) == 2  # nothing sent, nothing new
    assert set(s.runner.checked) == {"web1!http", "web2!http"}  # re-checks asked for at once
    s.result("web1!http", CheckState.OK, "OK - fixed before the restart")
    s.result("web2!http", CheckState.OK, "OK - fine")
    await s.step(1)
    first, second = await s.jobs()
    assert first.state is JobState.SUCCEEDED
    assert (first.output or "").endswith("after the manager's restart, re-check OK: "
                                         "OK - fixed before the restart")  # fmt: skip
    assert second.state is JobState.SKIPPED  # truly recovered, by a fresh result
    assert s.runner.jobs == [] and len(await s.jobs()) == 2
    events = [e for e, _ in await s.audit("web1!http")]
    assert events == ["queued", "dispatched", "interrupted", "resolved"]


async def test_after_a_restart_a_target_still_in_trouble_is_interrupted_and_its_queue_runs_once(
    s: Setup,
) -> None:
    s.service.configure([rule(max_concurrent=1)])
    s.checks(record("web1"), record("web2"))
    s.states(status("web1!http", CheckState.CRITICAL), status("web2!http", CheckState.CRITICAL))
    await s.step()
    await restarted(s, status("web1!http", CheckState.OK), status("web2!http", CheckState.OK))
    await s.step(1)  # saved OK: a queued job is not skipped on that
    first, second = await s.jobs()
    assert (first.state, second.state) == (JobState.VERIFYING, JobState.QUEUED)
    s.result("web1!http", CheckState.CRITICAL, "CRITICAL - still down")
    await s.step(1)
    first, _ = await s.jobs()  # its action may still be running on the worker (not cancelled
    assert first.state is JobState.VERIFYING  # when the link dropped): it may yet fix it
    s.clock.now += 70  # past the action's deadline (60 s + 5 s from its dispatch)
    s.result("web1!http", CheckState.CRITICAL, "CRITICAL - still down")
    s.result("web2!http", CheckState.CRITICAL, "CRITICAL - down")
    await s.step(1)
    await s.step(1)
    first, second = await s.jobs()
    assert first.state is JobState.INTERRUPTED
    assert "whether the action ran is unknown, so it is not run again" in (first.output or "")
    assert second.state is JobState.DISPATCHED
    assert [j.payload.host for j, _ in s.runner.jobs] == ["web2"]  # once, and not web1 again
    [note] = s.notes
    assert note.key == "web1!http" and "still CRITICAL" in note.output


async def test_metric_alarms_drive_metric_rules(s: Setup) -> None:
    s.service.configure([rule(when={"service": "http", "metric": "time"})])
    s.checks(record("web1"))
    s.states(status("web1!http", CheckState.CRITICAL))
    await s.step()
    assert s.runner.jobs == []  # a metric rule does not act on the state
    s.service.metric_alarm("web1!http", "time", "CRITICAL", s.clock.now)
    await s.step(1)
    assert len(s.runner.jobs) == 1
    [stored] = await s.jobs()
    assert stored.trigger == "metric:time=CRITICAL"


async def test_no_result_by_the_deadline_goes_to_verification(s: Setup) -> None:
    s.service.configure([rule()])
    s.checks(record("web1"))
    s.states(status("web1!http", CheckState.CRITICAL))
    await s.step()
    await s.step(80)
    [job] = await s.jobs()
    assert job.state is JobState.VERIFYING and "may have run" in (job.output or "")
    await s.step(100)
    [job] = await s.jobs()
    assert job.state is JobState.FAILED
    assert job.output is not None and job.output.endswith("no re-check result within 65s")
