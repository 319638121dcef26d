"""The infrastructure stage on a zone of two workers: singleton jobs, on any of them.

The stage hands its jobs to the real engine runner and job server (`tests.fixtures.cluster`),
so where a job goes is the server's routing; the test answers as the worker holding it. Two
properties, whatever the zone's size:

* one observe job per platform per poll, never one per worker; while it runs no second one
  is made, and a worker lost mid-observation moves that job to its peer, it is not doubled;
* at most one change per slot in flight, each on whichever worker the server picks: a
  change lost with its worker is not re-sent (at most once), and the next one goes to a
  worker that is there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.cluster import Cluster
from tests.unit.infra.test_service import IMAGE, SECRET, SIZE, T0, platform, resource
from watchkeeper import store
from watchkeeper.infra.providers.base import Machine
from watchkeeper.infra.service import InfraService, InfraSettings
from watchkeeper.jobs.payloads import InfraPayload
from watchkeeper.jobs.queue import QueuedJob
from watchkeeper.jobs.states import LIVE
from watchkeeper.store.jobs import SqlQueueConnector
from watchkeeper.transport.protocol import Job

POLL = 60.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def op_of(job: Job) -> str:
    assert isinstance(job.payload, InfraPayload)
    return job.payload.op


def slot_of(job: Job) -> str:
    assert isinstance(job.payload, InfraPayload)
    return job.payload.slot


class Zone:
    """The stage, attached to a runner whose job server has workers w1 and w2 in ``eu``."""

    def __init__(self, db: store.Database) -> None:
        self.clock = Clock()
        self.cluster = Cluster(db, self.clock, zone="eu")
        self.service = InfraService(
            db, SqlQueueConnector(db), settings=InfraSettings(), clock=self.clock
        )
        self.service.attach(self.cluster.runner)

    async def step(self, advance: float = 0.0) -> None:
        self.clock.now += advance
        await self.service.step()

    async def configure(self, **fields: Any) -> None:
        self.service.configure([platform()], [resource(**fields)])
        await self.step()

    def observes(self) -> list[tuple[str, Job]]:
        """(worker, job) of every observe job sent, to any worker, oldest first."""
        return [(n, j) for n, j in self.cluster.sent() if op_of(j) == "observe"]

    def open(self, op: str) -> list[tuple[str, Job]]:
        return self.cluster.open(lambda job: op_of(job) == op)

    def machine(self, slot: str, **fields: Any) -> Machine:
        values: dict[str, Any] = {
            "cloud_id": f"i-{slot}", "resource": "web", "slot": slot,
            "owner": self.service.owner, "state": "running", "size": SIZE, "image": IMAGE,
            "tags": {"watchkeeper:slot": slot}, **fields,
        }  # fmt: skip
        return Machine(**values)

    async def observe(self, *machines: Machine) -> None:
        """The worker holding the open observe job answers it; the stage steps on it."""
        [(_, job)] = self.open("observe")
        data = {"machines": [m.to_json() for m in machines]}
        await self.cluster.answer(job, output=f"observed {len(machines)}", data=data)
        await self.step()

    async def live(self) -> list[QueuedJob]:
        return await self.service.journal.list_jobs(states=LIVE)


@pytest.fixture
async def zone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Zone]:
    monkeypatch.setenv("WK_UNIT_AWS", SECRET)
    db = store.Database.for_data_dir(tmp_path)
    await db.migrate()
    try:
        yield Zone(db)
    finally:
        await db.aclose()


async def test_one_observe_job_per_poll_on_either_worker_never_one_per_worker(
    zone: Zone,
) -> None:
    await zone.configure(count=2)
    machines = [zone.machine("web-0"), zone.machine("web-1")]
    for poll in range(1, 5):
        assert len(zone.observes()) == poll, "one observe job per poll, for the whole zone"
        assert len(await zone.service.observations.list_jobs(states=LIVE)) == 1
        await zone.observe(*machines)
        await zone.step(POLL)
    holders = [name for name, _ in zone.observes()]
    assert set(holders) == {"w1", "w2"}, holders  # placed by load, not pinned to one

    # A poll passes while an observation runs: no second observe job is made.
    [(holder, running)] = zone.open("observe")
    await zone.step(POLL)
    assert zone.open("observe") == [(holder, running)]

    # Its worker is lost: the same job moves to the peer; it is not made twice.
    await zone.cluster.lose(holder)
    peer = "w2" if holder == "w1" else "w1"
    assert zone.open("observe") == [(peer, running)]
    await zone.step()
    assert [j.job_id for _, j in zone.observes()].count(running.job_id) == 1
    await zone.observe(*machines)
    # Answered; the poll it ran over is due, so the next one is already out: one, new.
    [(_, following)] = zone.open("observe")
    assert following.job_id != running.job_id
    assert len(await zone.service.observations.list_jobs(states=LIVE)) == 1


async def test_changes_spread_over_the_workers_one_per_slot_in_flight(zone: Zone) -> None:
    await zone.configure(count=4)
    await zone.observe()
    creates = zone.open("create")
    assert sorted(slot_of(j) for _, j in creates) == ["web-0", "web-1", "web-2", "web-3"]
    by_worker = {name: [slot_of(j) for n, j in creates if n == name] for name in ("w1", "w2")}
    assert [len(slots) for slots in by_worker.values()] == [2, 2], by_worker

    # A poll while they run: every slot is busy, nothing more is planned or sent.
    await zone.step(POLL)
    await zone.observe()
    assert zone.open("create") == creates
    assert len([j for _, j in zone.cluster.sent() if op_of(j) == "create"]) == 4
    live = await zone.live()
    assert sorted(j.subject for j in live) == ["web-0", "web-1", "web-2", "web-3"]

    # w1 is lost mid-apply: its creates are at most once, so w2 never gets them.
    w1_ids = {j.job_id for n, j in creates if n == "w1"}
    await zone.cluster.lose("w1")
    assert {j.job_id for j in zone.cluster.received("w2")} & w1_ids == set()
    for _, job in zone.open("create"):
        await zone.cluster.answer(job, output="created", data={
            "machine": zone.machine(slot_of(job)).to_json()})  # fmt: skip
    await zone.step()  # the results and losses: each asks for an observation soon
    await zone.step(zone.service.settings.confirm_after)
    # The observation shows only w2's machines: w1's creates did not happen, and are made
    # again, on the worker that is there.
    await zone.observe(*(zone.machine(s) for s in by_worker["w2"]))
    again = zone.open("create")
    assert sorted(slot_of(j) for _, j in again) == sorted(by_worker["w1"])
    assert {n for n, _ in again} == {"w2"} and not {j.job_id for _, j in again} & w1_ids
    assert len({j.subject for j in await zone.live()}) == len(await zone.live())


async def test_two_changes_for_one_slot_run_one_after_the_other(zone: Zone) -> None:
    # A stopped machine of a resource that wants protection: start it *and* protect it.
    await zone.configure(count=1, protect=True)
    await zone.observe(zone.machine("web-0", state="stopped"))
    queued = await zone.live()
    assert sorted(j.spec["op"] for j in queued) == ["protect", "start"]
    changes = zone.cluster.open(lambda j: op_of(j) != "observe")
    assert len(changes) == 1, "one change per slot in flight, though two workers are free"
    [(_, first)] = changes

    await zone.cluster.answer(first, output="done")
    await zone.step()
    [(_, second)] = zone.cluster.open(lambda j: op_of(j) != "observe")
    assert {op_of(first), op_of(second)} == {"protect", "start"}
    assert slot_of(second) == "web-0"
