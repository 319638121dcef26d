"""The deployment stage driven one `step` at a time: a fake runner whose deploy jobs the
test answers (or loses), a real SQLite store and a clock the test moves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from watchkeeper import store
from watchkeeper.deploy import repository
from watchkeeper.deploy.service import DeployService, JobDone
from watchkeeper.errors import UsageError, WatchkeeperError
from watchkeeper.jobs.payloads import DEPLOY_REQUIRES, DeployPayload
from watchkeeper.results import CheckOutcome, CheckState
from watchkeeper.transport import keys
from watchkeeper.transport.protocol import Job, Result

T0 = 1_735_732_800.0
FINGERPRINT = "SHA256:manager-host-key"


def deployment(**fields: Any) -> dict[str, Any]:
    return {
        "name": "base", "hosts": ["a", "b", "c"], "ssh": {"key": "file:/etc/wk/deploy_key"},
        "agent": {"manager": "10.0.0.1:4730"}, "files": [{"path": "/etc/motd", "content": "x"}],
        "every": "10m", "max_concurrent": 5, "max_failures": 0, **fields,
    }  # fmt: skip


HOSTS = [
    {"name": name, "address": f"10.0.0.{i}", "zone": "dc1", "labels": {"role": "legacy"}}
    for i, name in enumerate(("a", "b", "c"), 10)
]


@dataclass
class Sent:
    job: Job
    done: JobDone

    @property
    def payload(self) -> DeployPayload:
        assert isinstance(self.job.payload, DeployPayload)
        return self.job.payload


@dataclass
class FakeRunner:
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

    def take(self) -> list[Sent]:
        taken, self.sent = self.sent, []
        return taken


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class Setup:
    def __init__(self, db: store.Database) -> None:
        self.db = db
        self.clock = Clock()
        self.runner = FakeRunner()
        self.service = self.make()

    def make(self) -> DeployService:
        service = DeployService(self.db, clock=self.clock, version="0.9.0")
        service.fingerprint = FINGERPRINT
        service.attach(self.runner)
        return service

    async def step(self, advance: float = 0.0) -> None:
        self.clock.now += advance
        await self.service.step()

    async def configure(self, **fields: Any) -> None:
        self.service.configure([deployment(**fields)], HOSTS)
        await self.step()

    async def answer(
        self, sent: Sent, *, changes: tuple[str, ...] = (), error: str = "", **data: Any
    ) -> None:
        state = CheckState.CRITICAL if error else CheckState.OK
        result = Result(
            job_id=sent.job.job_id, token=0, state=state.value, output="done", started=T0,
            finished=T0 + 1,
            data={"changes": list(changes), "error": error, **data},
        )  # fmt: skip
        sent.done(result, None, "w1")
        await self.step()

    def outcome(self, host: str) -> CheckOutcome | str:
        return self.service.check_outcome({"deployment": "base", "host": host})


@pytest.fixture
async def s(tmp_path: Path) -> AsyncIterator[Setup]:
    db = store.Database.for_data_dir(tmp_path)
    await db.migrate()
    try:
        yield Setup(db)
    finally:
        await db.aclose()


def agent_key() -> str:
    return keys.canonical_public_key(asyncssh.generate_private_key("ssh-ed25519"))


async def test_hosts_are_checked_first_by_deploy_workers_of_their_zone(s: Setup) -> None:
    await s.configure()
    sent = s.runner.take()
    assert [x.payload.host for x in sent] == ["a", "b", "c"]
    job = sent[0].job
    assert job.zone == "dc1" and job.requires == DEPLOY_REQUIRES
    payload = sent[0].payload
    assert (payload.mode, payload.address, payload.labels) == (
        "check",
        "10.0.0.10",
        {"role": "legacy"},
    )
    # The manager's version and host key travel with the job; the document cannot set them.
    assert (payload.agent_version, payload.manager_fingerprint) == ("0.9.0", FINGERPRINT)
    assert payload.deployment["ssh"]["key"] == "file:/etc/wk/deploy_key"
    assert s.outcome("a") == "the first check-mode run is under way"


async def test_a_plan_with_changes_is_applied_then_verified(s: Setup) -> None:
    await s.configure(hosts=["a"])
    [check] = s.runner.take()
    await s.answer(check, changes=("install agent 0.9.0", "change /etc/motd"))
    outcome = s.outcome("a")
    assert isinstance(outcome, CheckOutcome) and outcome.state is CheckState.WARNING
    assert outcome.output.startswith("drift: would install agent 0.9.0; would change /etc/motd")
    [apply] = s.runner.take()
    assert apply.payload.mode == "apply"
    await s.answer(apply, changes=("install agent 0.9.0", "change /etc/motd"))
    [verify] = s.runner.take()
    assert verify.payload.mode == "check"
    await s.answer(verify, agent_version="0.9.0")
    outcome = s.outcome("a")
    assert isinstance(outcome, CheckOutcome)
    assert (outcome.state, outcome.output) == (
        CheckState.OK,
        "converged: agent 0.9.0, 1 file in sync",
    )
    assert "deploy:a" in s.runner.checked
    # Nothing more until `every` has passed; then a drift check.
    await s.step(599)
    assert s.runner.take() == []
    await s.step(1)
    assert [x.payload.mode for x in s.runner.take()] == ["check"]


async def test_report_only_drift_waits_for_an_operator(s: Setup) -> None:
    await s.configure(hosts=["a"], drift="report")
    [check] = s.runner.take()
    await s.answer(check, changes=("change /etc/motd",))
    assert s.runner.take() == []
    outcome = s.outcome("a")
    assert isinstance(outcome, CheckOutcome)
    assert "drift is only reported; apply: watchkeeper deploy apply base" in outcome.output
    assert s.service.request("base", "a", "apply") == ["a"]
    await s.step()
    [fresh] = s.runner.take()
    assert fresh.payload.mode == "check"  # an apply is made from a fresh plan
    await s.answer(fresh, changes=("change /etc/motd",))
    assert [x.payload.mode for x in s.runner.take()] == ["apply"]


async def test_requests_name_the_unknown_deployment_or_host(s: Setup) -> None:
    await s.configure()
    with pytest.raises(WatchkeeperError, match=r"no deployment 'web' \(deployments: base\)"):
        s.service.request("web", None, "check")
    with pytest.raises(WatchkeeperError, match=r"has no host 'z' \(hosts: a, b, c\)"):
        s.service.request("base", "z", "apply")


async def test_failures_past_max_failures_halt_until_resumed(s: Setup) -> None:
    await s.configure(max_failures=1)
    a, b, c = s.runner.take()
    await s.answer(a, error="cannot connect to 10.0.0.10: timed out", error_kind="unreachable")
    await s.answer(c, changes=("change /etc/motd",))
    [apply_c] = s.runner.take()  # one failure is tolerated
    assert apply_c.payload.host == "c"
    await s.answer(b, error="host key changed", error_kind="host-key")
    assert "2 hosts failed (a, b), more than max_failures 1" in s.service.halts["base"]
    assert await repository.halts(s.db) == s.service.halts  # kept across restarts
    outcome = s.outcome("a")
    assert isinstance(outcome, CheckOutcome) and outcome.state is CheckState.CRITICAL
    assert outcome.output == "deploy check failed: cannot connect to 10.0.0.10: timed out"
    # The apply already sent finishes; a new plan with changes is not applied while halted.
    await s.answer(apply_c, changes=("change /etc/motd",))
    [verify] = s.runner.take()
    await s.answer(verify, changes=("change /etc/motd",))
    assert s.runner.take() == []
    outcome = s.outcome("c")
    assert isinstance(outcome, CheckOutcome) and "rollout halted" in outcome.output
    # An operator's apply resumes it (checks first).
    s.service.request("base", None, "apply")
    await s.step()
    assert "base" not in s.service.halts and await repository.halts(s.db) == {}
    assert sorted(x.payload.host for x in s.runner.take()) == ["a", "b", "c"]


async def test_a_new_deployment_digest_lifts_a_halt(s: Setup) -> None:
    await s.configure(hosts=["a"])
    [a] = s.runner.take()
    await s.answer(a, error="boom", error_kind="apply")
    assert "base" in s.service.halts
    await s.configure(hosts=["a"], files=[{"path": "/etc/motd", "content": "y"}])
    assert "base" not in s.service.halts
    [fresh] = s.runner.take()
    assert fresh.payload.deployment["files"][0]["content"] == "y"


async def test_no_deploy_worker_is_a_waiting_reason_and_retried(s: Setup) -> None:
    s.runner.accepting = False
    await s.configure(hosts=["a"])
    assert s.outcome("a") == (
        "waiting for a deploy worker of zone dc1 (a worker key enrolled with the label deploy=true)"
    )
    s.runner.accepting = True
    await s.step(1)
    assert s.runner.take() == []  # not before the resend delay
    await s.step(5)
    assert [x.payload.host for x in s.runner.take()] == ["a"]


async def test_a_lost_job_is_sent_again(s: Setup) -> None:
    await s.configure(hosts=["a"])
    [a] = s.runner.take()
    a.done(None, "the worker disconnected", "w1")
    await s.step()
    [again] = s.runner.take()
    assert again.payload.mode == "check"


async def test_the_agent_key_waits_for_an_admin_and_approval_enrols_it(s: Setup) -> None:
    await s.configure(hosts=["a"])
    [a] = s.runner.take()
    key = agent_key()
    await s.answer(a, agent_key=key, agent_version="0.9.0")
    [pending] = await repository.pending_keys(s.db)
    assert (pending.host, pending.zone, pending.public_key) == ("a", "dc1", key)
    outcome = s.outcome("a")
    assert isinstance(outcome, CheckOutcome) and outcome.state is CheckState.WARNING
    assert outcome.output.endswith("waits for approval: watchkeeper worker-key approve a")
    # Nothing is enrolled by the deploy itself.
    async with s.db.session() as session:
        assert await store.find_by_public_key(session, key) is None
    enrolled, notes = await repository.approve(s.db, "a", now=T0)
    assert (enrolled.name, list(enrolled.zones), enrolled.agent_for) == ("agent-a", ["dc1"], "a")
    assert notes == []
    with pytest.raises(UsageError, match="no agent key of host 'a' waits"):
        await repository.approve(s.db, "a", now=T0)
    await s.step(5)  # the stage reads the pending keys again
    outcome = s.outcome("a")
    assert isinstance(outcome, CheckOutcome) and outcome.state is CheckState.OK
    # The same key brought back by a later deploy is not offered again.
    assert (
        await repository.offer_key(
            s.db, host="a", deployment="base", zone="dc1", public_key=key, now=T0
        )
        is None
    )


async def test_a_rejected_key_is_not_offered_again(s: Setup) -> None:
    key = agent_key()
    await repository.offer_key(
        s.db, host="a", deployment="base", zone="dc1", public_key=key, now=T0
    )
    rejected = await repository.reject(s.db, "a", now=T0)
    assert rejected.public_key == key
    assert (
        await repository.offer_key(
            s.db, host="a", deployment="base", zone="dc1", public_key=key, now=T0
        )
        is None
    )
    async with s.db.session() as session:
        found = await store.find_by_public_key(session, key)
    assert found is not None and found.revoked and found.name == "rejected-a"


async def test_a_rekeyed_host_replaces_its_previous_agent_key(s: Setup) -> None:
    first, second = agent_key(), agent_key()
    await repository.offer_key(
        s.db, host="a", deployment="base", zone="dc1", public_key=first, now=T0
    )
    await repository.approve(s.db, "a", now=T0)
    await repository.offer_key(
        s.db, host="a", deployment="base", zone="dc1", public_key=second, now=T0
    )
    enrolled, notes = await repository.approve(s.db, "a", now=T0)
    assert enrolled.name == "agent-a-2"
    assert len(notes) == 1 and notes[0].startswith("revoked agent-a (")


async def test_statuses_survive_a_restart(s: Setup) -> None:
    await s.configure(hosts=["a"])
    [a] = s.runner.take()
    await s.answer(a, changes=("change /etc/motd",))
    s.runner.take()
    s.service = s.make()
    await s.configure(hosts=["a"])
    status = s.service.statuses[("base", "a")]
    assert status.mode == "check" and status.changes == ("change /etc/motd",)
    # What was in flight when the manager stopped is simply run again (deploys converge).
    assert [x.payload.mode for x in s.runner.take()] == ["apply"]


async def test_hosts_that_leave_the_deployment_are_forgotten(s: Setup) -> None:
    await s.configure(hosts=["a", "b"])
    for sent in s.runner.take():
        await s.answer(sent)
    await s.configure(hosts=["a"])
    assert set(await repository.statuses(s.db)) == {("base", "a")}
    assert s.outcome("b") == "not in the deployments in force yet"
