"""The deployment stage on a zone of two deploy workers: one run per host at a time, on
either of them.

Jobs go through the real engine runner and job server (`tests.fixtures.cluster`), so which
worker runs a host's deploy is the server's routing; the test answers as that worker.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fixtures.cluster import Cluster
from tests.unit.deploy.test_service import FINGERPRINT, HOSTS, T0, deployment
from watchkeeper import store
from watchkeeper.deploy.service import DeployService
from watchkeeper.jobs.payloads import DEPLOY_REQUIRES, DeployPayload
from watchkeeper.transport.protocol import Job


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def host_of(job: Job) -> str:
    assert isinstance(job.payload, DeployPayload)
    return job.payload.host


def mode_of(job: Job) -> str:
    assert isinstance(job.payload, DeployPayload)
    return job.payload.mode


class Zone:
    """The stage, attached to a runner whose job server has deploy workers w1, w2 in dc1."""

    def __init__(self, db: store.Database) -> None:
        self.clock = Clock()
        self.cluster = Cluster(db, self.clock, zone="dc1", labels=DEPLOY_REQUIRES)
        self.service = DeployService(db, clock=self.clock, version="0.9.0")
        self.service.fingerprint = FINGERPRINT
        self.service.attach(self.cluster.runner)

    async def step(self, advance: float = 0.0) -> None:
        self.clock.now += advance
        await self.service.step()

    def per_host(self) -> dict[str, list[str]]:
        """Host -> the ids of the deploy jobs leased for it now."""
        found: dict[str, list[str]] = {}
        for _, job in self.cluster.open():
            found.setdefault(host_of(job), []).append(job.job_id)
        return found

    async def answer_all(self, *, changes: tuple[str, ...] = ()) -> None:
        for _, job in self.cluster.open():
            await self.cluster.answer(job, data={"changes": list(changes), "error": ""})
        await self.step()


@pytest.fixture
async def zone(tmp_path: Path) -> AsyncIterator[Zone]:
    db = store.Database.for_data_dir(tmp_path)
    await db.migrate()
    try:
        yield Zone(db)
    finally:
        await db.aclose()


async def test_one_run_per_host_at_a_time_on_either_deploy_worker(zone: Zone) -> None:
    zone.service.configure([deployment(drift="repair")], HOSTS)
    await zone.step()
    runs = zone.cluster.open()
    assert sorted(host_of(j) for _, j in runs) == ["a", "b", "c"]
    assert {mode_of(j) for _, j in runs} == {"check"}
    assert {name for name, _ in runs} == {"w1", "w2"}  # spread, not pinned to one

    # Steps go by while they run: no host gets a second job.
    for _ in range(5):
        await zone.step(10.0)
    assert {h: len(ids) for h, ids in zone.per_host().items()} == {"a": 1, "b": 1, "c": 1}
    assert len(zone.cluster.sent()) == 3

    # The worker running a's check is lost: that job moves to the peer, not a second one.
    [(holder, a_job)] = [(n, j) for n, j in runs if host_of(j) == "a"]
    await zone.cluster.lose(holder)
    await zone.step()
    peer = next(iter(zone.cluster.workers))
    assert zone.cluster.holder(a_job.job_id) == peer
    assert {h: len(ids) for h, ids in zone.per_host().items()} == {"a": 1, "b": 1, "c": 1}

    # The checks find drift: one apply per host, on the zone's workers as they are now.
    zone.cluster.connect(holder)
    await zone.answer_all(changes=("file /etc/motd",))
    applies = zone.cluster.open()
    assert sorted(host_of(j) for _, j in applies) == ["a", "b", "c"]
    assert {mode_of(j) for _, j in applies} == {"apply"}
    assert {name for name, _ in applies} == {"w1", "w2"}
    await zone.step(10.0)
    assert {h: len(ids) for h, ids in zone.per_host().items()} == {"a": 1, "b": 1, "c": 1}
