"""The manager's app with a runner fed results by hand, and logged-in clients per role.

Checks run through a fake job server whose jobs the test answers (as in
tests/unit/web/test_views.py); users log in through ``/api/v1/session`` like a browser's
script would, so pages see a session with a CSRF token.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from watchkeeper import store
from watchkeeper.clock import utcnow
from watchkeeper.document.diff import ConfigDiff, Delta
from watchkeeper.manager.intake import ConfigIntake, IntakeOutcome, check_candidate
from watchkeeper.manager.jobs import EngineRunner
from watchkeeper.manager.stages import Stages
from watchkeeper.transport.protocol import Job, Result
from watchkeeper.transport.workers import WorkerInfo
from watchkeeper.web.app import create_app
from watchkeeper.web.security import Passwords, Role, Security, accounts

T0 = 1_764_000_000.0
OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
FAST = Passwords(time_cost=1, memory_cost=8, parallelism=1)
PASSWORD = "correct horse battery"
MANAGER = "m" * 32


class FakeServer:
    """Every zone is online; jobs are kept for the test to answer."""

    def __init__(self) -> None:
        self.jobs: list[Job] = []

    async def start(self) -> None:
        pass

    async def aclose(self) -> None:
        pass

    async def submit(self, job: Job) -> bool:
        self.jobs.append(job)
        return True

    def zone_online(self, zone: str) -> bool:
        return True

    def workers(self) -> list[WorkerInfo]:
        return [
            WorkerInfo(
                name="w1", zones=("core",), labels={"site": "a"}, agent_for=None,
                claimed_zones=("core",), claimed_labels={}, version="1", concurrency=4,
                in_flight=1, load=0.25, last_seen=T0, accepting=True, reason="", draining=False,
            )
        ]  # fmt: skip


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def document(services: int = 3) -> dict[str, Any]:
    """Hosts web1 (with a host check) and db1; ``services`` numbered services on web1."""
    return {
        "schema": "watchkeeper/v1",
        "zones": [{"name": "core"}, {"name": "dmz"}],
        "hosts": [
            {"name": "web1", "address": "10.0.0.1", "zone": "core", "labels": {"role": "web"},
             "check": {"check": {"kind": "tcp", "port": 22}, "interval": "1d",
                       "max_attempts": 1}},
            {"name": "db1", "address": "10.0.1.1", "zone": "dmz"},
        ],
        "services": [
            {"name": "ssh", "hosts": ["web1", "db1"], "interval": "1d", "max_attempts": 1,
             "check": {"kind": "tcp", "port": 22}},
            *({"name": f"svc{n:05d}", "hosts": ["web1"], "interval": "1d", "max_attempts": 1,
               "check": {"kind": "tcp", "port": 80}} for n in range(services)),
        ],
    }  # fmt: skip


@dataclass
class Env:
    db: store.Database
    runner: EngineRunner
    stages: Stages
    server: FakeServer
    clock: Clock
    http: httpx.AsyncClient

    async def report(self, results: dict[str, tuple[int, str]]) -> None:
        """Run the checks named now and answer them, one second after the last report."""
        self.clock.now += 1
        for key in results:
            assert self.runner.check_now(key)
        await self.runner._turn()
        jobs = {job.check: job for job in self.server.jobs}
        for key, (state, output) in results.items():
            job = jobs[key]
            self.runner.result_received(
                "w1",
                Result(job_id=job.job_id, token=job.token, state=state, output=output,
                       started=self.clock.now, finished=self.clock.now),
            )  # fmt: skip
        await self.runner._turn()
        await self.stages.alarms.flush(force=True)

    async def login(self, role: Role) -> str:
        """Log the client in as a new user with ``role``; returns its CSRF token."""
        name = f"{role.value}-user"
        await accounts.create_user(self.db, name=name, role=role, password=PASSWORD, passwords=FAST)
        answer = await self.http.post("/api/v1/session", json={"name": name, "password": PASSWORD})
        assert answer.status_code == 200, answer.text
        token: str = answer.json()["csrf_token"]
        return token


async def build(tmp_path: Path, services: int = 3) -> AsyncIterator[Env]:
    db = store.Database.for_data_dir(tmp_path)
    await db.migrate()
    clock, server = Clock(), FakeServer()
    stages = Stages(db, clock=clock)
    runner = EngineRunner(
        db,
        lambda _: server,  # type: ignore[arg-type,return-value]
        clock=clock,
        downstream=stages.downstream,
        interpret=stages.alarms.interpret,
    )
    await stages.start()
    await runner.start()
    snap = check_candidate(json.dumps(document(services)).encode()).snapshot
    assert snap is not None
    diff = ConfigDiff(objects={}, checks=Delta(added=list(snap.checks)))
    outcome = IntakeOutcome(source="t", content_hash="x", accepted=True, diff=diff, created=True)
    runner.config_imported(outcome, snap)
    await runner._turn()
    security = Security(db, manager_token=MANAGER, passwords=FAST)
    app = create_app(
        db, ConfigIntake(db, clock=utcnow), MANAGER, runner=runner, stages=stages,
        security=security,
    )  # fmt: skip
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        yield Env(db, runner, stages, server, clock, http)
    await db.aclose()


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async for made in build(tmp_path):
        yield made
