"""The engine runner with a fake job server and a clock the test moves."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from watchkeeper import store
from watchkeeper.document.diff import ConfigDiff, Delta
from watchkeeper.engine import CheckStatus
from watchkeeper.manager.intake import IntakeOutcome, check_candidate
from watchkeeper.manager.jobs import EngineRunner, summarize
from watchkeeper.results import CheckState
from watchkeeper.transport.protocol import Job, Result


class FakeServer:
    """Zone ``core`` has a worker; it takes jobs while ``accepting``, remembering them."""

    def __init__(self) -> None:
        self.jobs: list[Job] = []
        self.accepting = True
        self.port = 0

    async def start(self) -> None:
        pass

    async def aclose(self) -> None:
        pass

    async def submit(self, job: Job) -> bool:
        if not self.accepting:
            return False
        self.jobs.append(job)
        return True

    def zone_online(self, zone: str) -> bool:
        return zone == "core"


DOC = {
    "schema": "watchkeeper/v1",
    "zones": [{"name": "core"}],
    "hosts": [{"name": "h1", "address": "127.0.0.1", "zone": "core"}],
    "services": [
        {"name": "ssh", "hosts": ["h1"], "interval": "10s", "max_attempts": 1,
         "check": {"kind": "tcp", "port": 22}},
    ],
}  # fmt: skip


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


Setup = tuple[EngineRunner, FakeServer, list[str], Clock]


@pytest.fixture
async def runner(tmp_path: Path) -> AsyncIterator[Setup]:
    db = store.Database.for_data_dir(tmp_path)
    await db.migrate()
    server, lines, clock = FakeServer(), list[str](), Clock()
    r = EngineRunner(db, lambda _: server, clock=clock, on_summary=lines.append)  # type: ignore[arg-type,return-value]
    await r.start()
    yield r, server, lines, clock
    await db.aclose()


def _import(r: EngineRunner) -> None:
    snap = check_candidate(json.dumps(DOC).encode()).snapshot
    assert snap is not None
    diff = ConfigDiff(objects={}, checks=Delta(added=list(snap.checks)))
    outcome = IntakeOutcome(source="t", content_hash="x", accepted=True, diff=diff, created=True)
    r.config_imported(outcome, snap)


async def test_dispatches_records_and_summarises(
    runner: Setup,
) -> None:
    r, server, lines, clock = runner
    _import(r)
    await r._turn()
    assert r.zones == frozenset({"core"})
    for _ in range(12):  # ten seconds of ticks: the check's phase falls somewhere in them
        clock.now += 1
        await r._turn()
    assert len(server.jobs) == 1
    job = server.jobs[0]
    assert job.check == "h1!ssh" and job.zone == "core" and job.spec["check"]["port"] == 22
    assert job.deadline > clock.now

    result = Result(job_id=job.job_id, token=job.token, state=2, output="refused",
                    started=0, finished=0)  # fmt: skip
    r.result_received("embedded", result)
    r.result_received("embedded", result)  # a duplicate counts once
    await r._turn()
    status = r.engine.statuses["h1!ssh"]
    assert status.state is CheckState.CRITICAL and not status.pending
    assert lines[-1] == "1 check: 1 CRITICAL (h1!ssh)"


async def test_a_job_no_worker_takes_is_unknown_at_once(
    runner: Setup,
) -> None:
    r, server, _, clock = runner
    _import(r)
    await r._turn()  # the zone is seen online
    server.accepting = False  # but its worker is full by the time the check is due
    for _ in range(12):
        clock.now += 1
        await r._turn()
    status = r.engine.statuses["h1!ssh"]
    assert status.state is CheckState.UNKNOWN
    assert "no worker" in status.output


def test_summary_names_the_worst_problems_first() -> None:
    def status(key: str, state: CheckState) -> CheckStatus:
        return CheckStatus.initial(key, 0).evolve(state=state, pending=False)

    statuses = {
        "a": status("a", CheckState.OK),
        "b": status("b", CheckState.WARNING),
        "c": status("c", CheckState.CRITICAL),
        "d": CheckStatus.initial("d", 0),
    }
    assert summarize(statuses) == "4 checks: 1 OK, 1 WARNING, 1 CRITICAL, 1 PENDING (c, b)"
    assert summarize({}) == "0 checks: "
