"""The infrastructure stage driven one `step` at a time: a fake runner whose jobs the test
answers (or loses), a real SQLite store and a clock the test moves.

The fake runner records every `Job` the stage hands it; the test plays the worker by
calling the job's ``done`` with a `Result` (an observation carries ``{"machines": [...]}``,
a change ``{"machine": ...}``) or with ``None`` and why it was lost.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from watchkeeper import store
from watchkeeper.errors import Conflict, NotFound
from watchkeeper.infra import repository
from watchkeeper.infra.planner import Knowledge
from watchkeeper.infra.providers.base import Machine
from watchkeeper.infra.service import InfraService, InfraSettings, JobDone
from watchkeeper.jobs.payloads import InfraPayload
from watchkeeper.jobs.queue import QueuedJob
from watchkeeper.jobs.states import JobState
from watchkeeper.results import CheckOutcome, CheckState
from watchkeeper.store.jobs import SqlQueueConnector
from watchkeeper.transport.protocol import Job, Result

T0 = 1_735_732_800.0
#: The credential the platform's reference names; it must never travel in a job.
SECRET = "AKIAUNITTEST:unit-secret-value-5e1b"
CHECK = {"resource": "web", "platform": "cloud"}
IMAGE, SIZE = "ami-12345678", "t3.small"


def platform(**fields: Any) -> dict[str, Any]:
    return {"name": "cloud", "provider": "ec2", "zone": "eu", "credentials": "env:WK_UNIT_AWS",
            "poll": "60s", "options": {"region": "eu-west-1"},
            "limits": {"max_destroy": 2}, **fields}  # fmt: skip


def resource(**fields: Any) -> dict[str, Any]:
    return {"name": "web", "platform": "cloud", "count": 3, "size": SIZE, "image": IMAGE,
            **fields}  # fmt: skip


@dataclass
class Sent:
    """One job the stage handed to the runner, and how to answer it."""

    job: Job
    done: JobDone
    answered: bool = False

    @property
    def payload(self) -> InfraPayload:
        assert isinstance(self.job.payload, InfraPayload)
        return self.job.payload

    @property
    def op(self) -> str:
        return self.payload.op


@dataclass
class FakeRunner:
    """Takes every job while ``accepting``; a worker is online in each of ``zones``."""

    zones: set[str] = field(default_factory=lambda: {"eu"})
    accepting: bool = True
    sent: list[Sent] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    async def submit_action(self, job: Job, done: JobDone) -> bool:
        if not self.accepting:
            return False
        self.sent.append(Sent(job, done))
        return True

    def check_now(self, key: str) -> bool:
        self.checked.append(key)
        return True

    def has_worker(self, zone: str) -> bool:
        return zone in self.zones

    def open(self, op: str | None = None) -> list[Sent]:
        """The jobs not answered yet (of ``op``), oldest first."""
        return [s for s in self.sent if not s.answered and (op is None or s.op == op)]

    def changes(self) -> list[Sent]:
        return [s for s in self.sent if s.op != "observe"]


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def result(
    sent: Sent, state: int = 0, output: str = "", data: dict[str, Any] | None = None
) -> Result:
    return Result(job_id=sent.job.job_id, token=0, state=state, output=output or f"{sent.op} done",
                  started=T0, finished=T0 + 0.05, data=data)  # fmt: skip


class Setup:
    def __init__(self, db: store.Database) -> None:
        self.db = db
        self.clock = Clock()
        self.runner = FakeRunner()
        self.drained: list[tuple[str, str]] = []
        self.service = self.make()

    def make(self, runner: FakeRunner | None = None) -> InfraService:
        async def drain(host: str, reason: str, now: float) -> None:
            self.drained.append((host, reason))

        service = InfraService(
            self.db, SqlQueueConnector(self.db), settings=InfraSettings(), clock=self.clock,
            drain=drain,
        )  # fmt: skip
        service.attach(runner or self.runner)
        return service

    async def step(self, advance: float = 0.0) -> None:
        self.clock.now += advance
        await self.service.step()

    async def configure(self, *resources: dict[str, Any], **platform_fields: Any) -> None:
        self.service.configure([platform(**platform_fields)], list(resources))
        await self.step()

    def machine(self, slot: str, *, op: str = "", **fields: Any) -> Machine:
        """Our machine filling ``slot`` (``web-2``), as a worker's provider reports it."""
        values: dict[str, Any] = {
            "cloud_id": f"i-{slot}", "resource": "web", "slot": slot,
            "owner": self.service.owner, "op": op, "state": "running", "size": SIZE,
            "image": IMAGE, "address": f"10.0.0.{int(slot.rsplit('-', 1)[1]) + 10}",
            "tags": {"watchkeeper:slot": slot, "watchkeeper:op": op}, **fields,
        }  # fmt: skip
        return Machine(**values)

    def the_observe(self) -> Sent:
        [sent] = self.runner.open("observe")
        return sent

    async def observe(self, *machines: Machine, advance: float = 0.0) -> None:
        """Answer the open observe job with ``machines``; the stage steps on it."""
        sent = self.the_observe()
        sent.answered = True
        data = {"machines": [m.to_json() for m in machines]}
        sent.done(result(sent, output=f"observed {len(machines)} machines", data=data), None,
                  "w1")  # fmt: skip
        await self.step(advance)

    async def observe_next(self, *machines: Machine) -> None:
        """Move the clock to the next observation, then answer it with ``machines``."""
        await self.step(self.until_observe())
        await self.observe(*machines)

    def until_observe(self) -> float:
        state = self.service.platform_states()["cloud"]
        return max(0.0, state.next_observe - self.clock.now)

    def answer(self, sent: Sent, state: int = 0, output: str = "", **data: Any) -> None:
        sent.answered = True
        sent.done(result(sent, state, output, data or None), None, "w1")

    def made(self, sent: Sent) -> None:
        """A create that worked: the machine of its slot, tagged with its op id."""
        machine = self.machine(sent.payload.slot, op=sent.payload.op_id)
        self.answer(sent, output=f"created {sent.payload.slot}", machine=machine.to_json())

    def lose(self, sent: Sent) -> None:
        sent.answered = True
        sent.done(None, "worker lost", "w1")

    async def job(self, sent: Sent) -> QueuedJob:
        """The journal's job behind a change the runner got."""
        job_id = int(sent.job.job_id.rsplit("-", 1)[1])
        found = await self.service.journal.get(job_id)
        assert found is not None
        return found

    async def jobs(self, *states: JobState) -> list[QueuedJob]:
        found = await self.service.journal.list_jobs(states=states or None)
        return sorted(found, key=lambda j: j.id)

    def outcome(self) -> CheckOutcome | str:
        return self.service.check_outcome(CHECK)


@pytest.fixture
async def s(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Setup]:
    monkeypatch.setenv("WK_UNIT_AWS", SECRET)
    db = store.Database.for_data_dir(tmp_path)
    await db.migrate()
    try:
        yield Setup(db)
    finally:
        await db.aclose()


async def provisioned(s: Setup, count: int = 3) -> list[Sent]:
    """Configure ``count`` slots on an empty platform; the creates the runner got."""
    await s.configure(resource(count=count))
    await s.observe()
    creates = s.runner.open("create")
    assert len(creates) == count
    return creates


# --- (a) creates ---------------------------------------------------------------------------


async def test_count_three_on_an_empty_platform_sends_three_creates(s: Setup) -> None:
    await s.configure(resource())
    observe = s.the_observe()
    assert observe.job.zone == "eu" and observe.job.once is False
    assert observe.payload.owner == s.service.owner and s.service.owner
    await s.observe()

    creates = s.runner.open("create")
    assert sorted(c.payload.slot for c in creates) == ["web-0", "web-1", "web-2"]
    assert sorted(c.payload.index for c in creates) == [0, 1, 2]
    for sent in creates:
        job = sent.job
        assert job.zone == "eu"
        assert job.once is True
        assert sent.payload.op_id == job.job_id
        assert job.job_id == (await s.job(sent)).wire_id
        assert sent.payload.platform["credentials"] == "env:WK_UNIT_AWS"
        assert sent.payload.image == IMAGE and sent.payload.size == SIZE
        assert sent.payload.owner == s.service.owner
        wire = job.model_dump_json()
        for part in SECRET.split(":"):
            assert part not in wire, "the credential's value travels in the job"
    assert [j.state for j in await s.jobs()] == [JobState.DISPATCHED] * 3


async def test_created_machines_converge_to_ok(s: Setup) -> None:
    for sent in await provisioned(s):
        s.made(sent)
    await s.step()
    assert [j.state for j in await s.jobs()] == [JobState.SUCCEEDED] * 3
    await s.observe_next(*(s.machine(f"web-{i}") for i in range(3)))
    outcome = s.outcome()
    assert isinstance(outcome, CheckOutcome)
    assert (outcome.state, outcome.output) == (CheckState.OK, "3/3 converged")
    assert s.runner.changes() == s.runner.sent[1:4]  # nothing after the three creates
    assert s.service.slot_address("web-1") == "10.0.0.11"


# --- (b), (c) lost creates -----------------------------------------------------------------


async def test_a_lost_create_whose_machine_shows_succeeded_and_is_not_made_again(
    s: Setup,
) -> None:
    first, second, third = await provisioned(s)
    s.made(first)
    s.made(second)
    s.lose(third)
    await s.step()
    lost = await s.job(third)
    assert lost.state is JobState.VERIFYING
    assert (await s.job(first)).state is JobState.SUCCEEDED

    # The next observation (soon: the loss asks for one) shows the slot, with the op tag.
    assert s.until_observe() <= s.service.settings.confirm_after
    slot = third.payload.slot
    await s.observe_next(
        *(s.machine(f.payload.slot, op=f.payload.op_id) for f in (first, second)),
        s.machine(slot, op=third.payload.op_id),
    )
    assert (await s.job(third)).state is JobState.SUCCEEDED
    assert s.runner.open("create") == []
    assert len(s.runner.changes()) == 3
    assert len(await s.jobs()) == 3
    events = [e.event for e in await s.service.journal.list_audit(job_id=lost.id)]
    assert "lost" in events and "verified" in events


async def test_a_lost_create_whose_machine_does_not_show_is_made_once_more(s: Setup) -> None:
    first, second, third = await provisioned(s)
    s.made(first)
    s.made(second)
    s.lose(third)
    await s.step()
    slot = third.payload.slot
    await s.observe_next(*(s.machine(f.payload.slot, op=f.payload.op_id) for f in (first, second)))

    assert (await s.job(third)).state is JobState.FAILED
    [again] = s.runner.open("create")
    assert again.payload.slot == slot
    assert again.payload.op_id not in ("", third.payload.op_id)
    assert again.job.once is True
    assert len(s.runner.changes()) == 4
    live = await s.jobs(JobState.QUEUED, JobState.DISPATCHED, JobState.VERIFYING)
    assert [j.subject for j in live] == [slot]

    # And once it is made, nothing more: exactly three slots, each once.
    s.made(again)
    await s.step()
    await s.observe_next(
        *(s.machine(f.payload.slot, op=f.payload.op_id) for f in (first, second, again))
    )
    assert s.runner.open("create") == []
    assert len(s.runner.changes()) == 4


async def test_an_observation_sent_before_a_change_ended_plans_nothing(s: Setup) -> None:
    """It may list the platform before the change landed: a lost create would be called
    not done and made twice, a done one made again."""
    first, second, third = await provisioned(s)
    s.made(first)
    s.made(second)
    await s.step(s.until_observe())  # an observation goes out while the third is in flight
    early = s.the_observe()
    s.clock.now += 1.0
    s.lose(third)
    await s.step()
    assert (await s.job(third)).state is JobState.VERIFYING

    s.clock.now += 1.0
    await s.observe(*(s.machine(f.payload.slot, op=f.payload.op_id) for f in (first, second)))
    assert early.answered
    assert (await s.job(third)).state is JobState.VERIFYING  # not decided on a stale list
    assert s.runner.open("create") == []

    # The next observation, sent after the loss, shows the third machine: verified.
    await s.step(s.until_observe())
    await s.observe(
        *(s.machine(f.payload.slot, op=f.payload.op_id) for f in (first, second, third))
    )
    assert (await s.job(third)).state is JobState.SUCCEEDED
    assert len(s.runner.changes()) == 3


# --- (d) a manager restart mid-apply -------------------------------------------------------


async def test_a_restart_mid_apply_verifies_what_was_dispatched(s: Setup) -> None:
    first, second, third = await provisioned(s)
    s.made(first)
    await s.step()
    # The first manager stops here: two creates handed to workers, their results unknown.
    left = [await s.job(second), await s.job(third)]
    assert [j.state for j in left] == [JobState.DISPATCHED] * 2

    runner = FakeRunner()
    s.runner = runner
    s.service = s.make(runner)
    await s.service.start()
    assert [(await s.job(x)).state for x in (second, third)] == [JobState.VERIFYING] * 2
    assert (await s.job(first)).state is JobState.SUCCEEDED

    # Its first observation: the second create happened, the third did not.
    await s.step()
    await s.observe(
        s.machine(first.payload.slot, op=first.payload.op_id),
        s.machine(second.payload.slot, op=second.payload.op_id),
    )
    assert (await s.job(second)).state is JobState.SUCCEEDED
    assert (await s.job(third)).state is JobState.FAILED
    [again] = runner.open("create")
    assert again.payload.slot == third.payload.slot
    assert [x.op for x in runner.sent] == ["observe", "create"]
    audit = await s.service.journal.list_audit(job_id=(await s.job(second)).id)
    assert [e.event for e in reversed(audit)][-2:] == ["interrupted", "verified"]


# --- (e) no worker in the zone ------------------------------------------------------------


async def test_no_worker_in_the_zone_waits_and_is_never_unknown(s: Setup) -> None:
    s.runner.zones = {"dmz"}
    await s.configure(resource())
    for _ in range(5):
        assert s.runner.sent == []
        outcome = s.outcome()
        assert outcome == "waiting for a worker of zone eu"
        await s.step(120.0)
    assert s.service.last_plans() == {}
    # A worker of the zone connects: the platform is observed at once.
    s.runner.zones.add("eu")
    await s.step()
    assert [x.op for x in s.runner.sent] == ["observe"]


# --- (f) what is not trusted ---------------------------------------------------------------


async def test_a_failed_observation_is_unknown_and_changes_nothing(s: Setup) -> None:
    await s.configure(resource())
    sent = s.the_observe()
    s.answer(sent, 3, "INFRA OBSERVE FAILED (RequestLimitExceeded) - Request limit exceeded.")
    await s.step()

    plan = s.service.last_plans()["cloud"]
    assert plan.knowledge is Knowledge.UNKNOWN
    assert plan.actions == ()
    outcome = s.outcome()
    assert isinstance(outcome, CheckOutcome)
    assert outcome.state is CheckState.UNKNOWN
    assert "RequestLimitExceeded" in outcome.output
    await s.step(s.until_observe())
    assert [x.op for x in s.runner.sent] == ["observe", "observe"]
    assert await s.jobs() == []
    inventory = s.service.platform_states()["cloud"].inventory
    assert inventory is not None and inventory.failures == 1


async def test_an_empty_observation_after_three_known_is_unknown_until_accepted(
    s: Setup,
) -> None:
    for sent in await provisioned(s):
        s.made(sent)
    await s.step()
    await s.observe_next(*(s.machine(f"web-{i}") for i in range(3)))
    creates = len(s.runner.open("create"))
    assert creates == 0

    await s.observe_next()  # the platform shows nothing where three were known
    plan = s.service.last_plans()["cloud"]
    assert plan.knowledge is Knowledge.UNKNOWN
    assert "observed 0 of 3" in plan.reason
    assert s.runner.open("create") == []
    outcome = s.outcome()
    assert isinstance(outcome, CheckOutcome) and outcome.state is CheckState.UNKNOWN
    await s.observe_next()  # and again: still nothing is made
    assert s.runner.open("create") == []

    await s.service.accept("cloud", author="ops")
    await s.step()
    await s.observe()
    assert sorted(c.payload.slot for c in s.runner.open("create")) == ["web-0", "web-1", "web-2"]


# --- (g) the shrink guard ------------------------------------------------------------------


async def test_a_document_that_removes_too_much_is_held_until_confirmed(s: Setup) -> None:
    await s.configure(resource(count=5))
    five = [s.machine(f"web-{i}") for i in range(5)]
    await s.observe(*five)
    assert s.runner.changes() == []
    accepted = await repository.desired(s.db, repository.ACCEPTED)
    assert accepted is not None and accepted.desired.resources["web"].count == 5

    await s.configure()  # the same platform, no infrastructure at all
    held = s.service.held
    assert held is not None and "max_destroy=2" in held.reason
    assert s.service.desired.resources["web"].count == 5
    accepted = await repository.desired(s.db, repository.ACCEPTED)
    assert accepted is not None and accepted.desired.resources["web"].count == 5
    assert await repository.desired(s.db, repository.HELD) is not None
    await s.observe(*five)  # the new configuration asks for an observation at once
    await s.observe_next(*five)
    assert await s.jobs() == []
    assert s.runner.changes() == []
    outcome = s.outcome()
    assert isinstance(outcome, CheckOutcome) and outcome.state is CheckState.OK

    confirmed = await s.service.confirm_hold("ops")
    assert confirmed.resources == {}
    assert s.service.held is None
    assert await repository.desired(s.db, repository.HELD) is None
    await s.observe_next(*five)
    pending = await s.jobs(JobState.PENDING)
    assert [(j.spec["op"], j.subject) for j in pending] == [
        ("destroy", "web-4"), ("destroy", "web-3"),
    ]  # fmt: skip
    assert s.runner.changes() == []  # they wait for an operator
    assert len(s.service.last_plans()["cloud"].refusals) == 3  # max_destroy per apply


# --- (h) the circuit breaker ---------------------------------------------------------------


FAILED = "INFRA CREATE FAILED (InsufficientInstanceCapacity) - no capacity in eu-west-1a"


async def broken(s: Setup) -> None:
    """Three creates fail in a row; the next observation plans them again."""
    for sent in await provisioned(s):
        s.answer(sent, 2, FAILED)
    await s.step()
    assert [j.state for j in await s.jobs()] == [JobState.FAILED] * 3
    await s.observe_next()
    assert len(await s.jobs(JobState.QUEUED)) == 3


async def test_three_failed_changes_open_the_breaker_until_its_pause_ends(s: Setup) -> None:
    await broken(s)
    state = s.service.platform_states()["cloud"]
    assert state.breaker_until == pytest.approx(T0 + s.service.settings.breaker_base, abs=5)
    assert s.runner.open("create") == []
    outcome = s.outcome()
    assert isinstance(outcome, CheckOutcome)
    assert outcome.state is CheckState.CRITICAL
    assert "InsufficientInstanceCapacity" in outcome.output and "3 in a row" in outcome.output

    await s.step(state.breaker_until - s.clock.now - 0.5)
    assert s.runner.open("create") == []
    await s.step(1.0)
    assert len(s.runner.open("create")) == 3


async def test_apply_now_closes_the_breaker(s: Setup) -> None:
    await broken(s)
    assert await s.service.apply_now(author="ops") == ["cloud"]
    await s.step()
    assert len(s.runner.open("create")) == 3
    assert s.service.platform_states()["cloud"].breaker_until == 0.0
    outcome = s.outcome()
    assert isinstance(outcome, CheckOutcome) and outcome.state is not CheckState.CRITICAL
    with pytest.raises(NotFound):
        await s.service.apply_now(["db"], author="ops")


# --- (i) operators' decisions --------------------------------------------------------------


async def test_decide_runs_a_pending_destroy(s: Setup) -> None:
    await s.configure(resource(count=2))
    await s.observe(*(s.machine(f"web-{i}") for i in range(3)))
    [pending] = await s.jobs(JobState.PENDING)
    assert (pending.spec["op"], pending.subject) == ("destroy", "web-2")
    assert s.runner.changes() == []

    moved = await s.service.decide(pending.id, run=True, author="ops")
    assert moved.state is JobState.QUEUED and moved.decided_by == "ops"
    await s.step()
    [sent] = s.runner.open("destroy")
    assert (sent.payload.slot, sent.payload.cloud_id) == ("web-2", "i-web-2")
    assert sent.job.once is True
    assert [host for host, _ in s.drained] == ["web-2"]
    assert (await s.job(sent)).state is JobState.DISPATCHED

    with pytest.raises(Conflict):
        await s.service.decide(pending.id, run=True, author="ops")
    with pytest.raises(NotFound):
        await s.service.decide(999_999, run=False, author="ops")


async def test_skipping_a_pending_destroy(s: Setup) -> None:
    await s.configure(resource(count=2))
    await s.observe(*(s.machine(f"web-{i}") for i in range(3)))
    [pending] = await s.jobs(JobState.PENDING)
    skipped = await s.service.decide(pending.id, run=False, author="ops")
    assert skipped.state is JobState.SKIPPED
    await s.step()
    assert s.runner.changes() == []


# --- (j) unprotect -------------------------------------------------------------------------


async def test_unprotect_lifts_the_store_protection_and_queues_a_job(s: Setup) -> None:
    [create] = await provisioned(s, count=1)
    assert create.payload.protect is False
    s.service.configure([platform()], [resource(count=1, protect=True)])
    machine = s.machine("web-0", op=create.payload.op_id, protected=True)
    s.answer(create, output="created web-0", machine=machine.to_json())
    await s.step()
    assert await repository.protected(s.db) == {"cloud": frozenset({"i-web-0"})}

    job = await s.service.unprotect("web-0", author="ops")
    assert await repository.protected(s.db) == {}
    assert s.service.protected_ids() == {}
    assert (job.spec["op"], job.spec["cloud_id"], job.state) == ("unprotect", "i-web-0",
                                                                 JobState.QUEUED)  # fmt: skip
    await s.step()
    [sent] = s.runner.open("unprotect")
    assert (sent.payload.cloud_id, sent.payload.slot) == ("i-web-0", "web-0")
    with pytest.raises(NotFound):
        await s.service.unprotect("web-7", author="ops")


# --- results that never come ---------------------------------------------------------------
#
# The job server gives a lease up at the job's deadline without telling anyone (its
# `_tick`) and ignores a result that comes later; a worker answers a job that hangs only at
# deadline + JOB_GRACE. So the stage itself must give up on a job at its lease.


async def test_an_observation_never_answered_is_given_up_on_at_its_lease(s: Setup) -> None:
    await s.configure(resource())
    hung = s.the_observe()
    hung.answered = True  # the worker hangs; the server drops the lease silently
    settings = s.service.settings
    lease = settings.observe_timeout + 5 + settings.result_grace
    await s.step(lease - 1)
    assert s.runner.open("observe") == []
    await s.step(2.0)
    [again] = s.runner.open("observe")
    assert again.job.job_id != hung.job.job_id
    failed = await s.service.observations.list_jobs(states=[JobState.FAILED])
    assert [j.wire_id for j in failed] == [hung.job.job_id]
    # The late answer of the given-up job changes nothing; the new one is still awaited.
    hung.done(result(hung, data={"machines": []}), None, "w1")
    await s.step()
    assert s.runner.open("create") == []
    await s.observe()
    assert len(s.runner.open("create")) == 3


async def test_a_change_never_answered_is_verified_after_its_lease(s: Setup) -> None:
    [create] = await provisioned(s, count=1)
    create.answered = True  # never answered
    settings = s.service.settings
    lease = settings.apply_timeout + 5 + settings.result_grace
    await s.step(lease - 1)
    assert (await s.job(create)).state is JobState.DISPATCHED
    await s.step(2.0)
    assert (await s.job(create)).state is JobState.VERIFYING
    if s.runner.open("observe"):  # sent before the loss: it decides nothing
        await s.observe()
        assert (await s.job(create)).state is JobState.VERIFYING
    else:
        await s.step(s.until_observe())
    await s.observe(s.machine("web-0", op=create.payload.op_id))
    assert (await s.job(create)).state is JobState.SUCCEEDED
    assert s.runner.open("create") == []
    # Its result, come at last, is too late to count twice.
    s.made(create)
    await s.step()
    assert (await s.job(create)).state is JobState.SUCCEEDED
    assert len(s.runner.changes()) == 1
