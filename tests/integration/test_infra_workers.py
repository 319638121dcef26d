"""Infrastructure through the real SSH job server and real workers, on moto.

The manager's parts are built by hand as `watchkeeper.manager.stages` wires them (store,
intake, engine runner with its job server, the infrastructure stage attached to it); the
workers dial the job server with keys enrolled in a `MemoryKeyRegistry`:

* zones: a worker enrolled for ``dmz`` and one for ``eu``, a platform in ``eu``; every job
  each worker gets is recorded: infra jobs only ever reach the ``eu`` one;
* kill -9 mid-apply: two ``eu`` workers as ``watchkeeper worker`` processes; the fault
  proxy forwards one RunInstances to moto but holds its reply, the worker holding that
  create is killed with SIGKILL: the job is lost, the surviving worker's next observation
  finds the instance by its slot and op tags, and the platform ends with exactly three;
* a hung observation: the job server drops a lease at its deadline without a word and the
  worker's late answer is ignored, so the stage must give up on the job at its lease
  itself, or the platform would never be observed again.

Every assertion about the platform is read back from moto with boto3.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any

import asyncssh
import pytest

from tests.fixtures.faultproxy import FaultProxy
from tests.fixtures.moto import Moto
from tests.waiting import wait_until
from watchkeeper import store
from watchkeeper.clock import utcnow
from watchkeeper.infra.service import InfraService, InfraSettings
from watchkeeper.jobs.queue import QueuedJob
from watchkeeper.jobs.states import JobState
from watchkeeper.manager.intake import ConfigIntake
from watchkeeper.manager.runner import EngineRunner
from watchkeeper.results import CheckOutcome
from watchkeeper.store.jobs import SqlQueueConnector
from watchkeeper.transport import keys
from watchkeeper.transport.client import WorkerConnection, WorkerSettings
from watchkeeper.transport.protocol import Job
from watchkeeper.transport.registry import MemoryKeyRegistry
from watchkeeper.transport.server import JobServer
from watchkeeper.worker.executors import install_child_watcher
from watchkeeper.worker.infra import InfraRunner
from watchkeeper.worker.runner import job_runner

WK = [sys.executable, "-m", "watchkeeper"]
#: The platform's credentials, as the workers' environment holds them (moto takes any).
SECRET = "AKIAWKWORKERS:wk-workers-secret-4d2a"
OK_CHECK = ["/bin/sh", "-c", "echo 'OK - gate'"]
FAST = InfraSettings(observe_timeout=20, apply_timeout=30, confirm_after=0.2)


def document(endpoint: str, subnet: str, count: int) -> dict[str, Any]:
    return {
        "schema": "watchkeeper/v1",
        "zones": [{"name": "eu"}, {"name": "dmz"}],
        "hosts": [{"name": "gate", "address": "127.0.0.1", "zone": "dmz"}],
        "services": [{"name": "up", "hosts": ["gate"], "interval": "1s",
                      "retry_interval": "1s", "max_attempts": 1,
                      "check": {"kind": "plugin", "command": OK_CHECK}}],
        "platforms": [{"name": "cloud", "provider": "ec2", "zone": "eu",
                       "credentials": "env:WK_TEST_AWS", "poll": "1s",
                       "options": {"region": "eu-west-1", "endpoint": endpoint,
                                   "max_attempts": 1}}],
        "infrastructure": [{"name": "web", "platform": "cloud", "count": count,
                            "size": "t3.small", "image": "ami-12345678", "confirm": [],
                            "options": {"subnet": subnet}}],
    }  # fmt: skip


def make_subnet(moto: Moto) -> str:
    """A subnet on loopback addresses: nothing a slot's host gets leaves the machine."""
    with contextlib.closing(moto.client()) as ec2:
        vpc = ec2.create_vpc(CidrBlock="127.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="127.0.11.0/24")["Subnet"]
    return str(subnet["SubnetId"])


def tag(instance: dict[str, Any], key: str) -> str:
    return next((t["Value"] for t in instance.get("Tags", []) if t["Key"] == key), "")


def instances(moto: Moto, *, live: bool = True) -> dict[str, dict[str, Any]]:
    """Instance id -> instance, of everything tagged with our resource."""
    found = {}
    with contextlib.closing(moto.client()) as ec2:
        pages = ec2.describe_instances(
            Filters=[{"Name": "tag:watchkeeper:resource", "Values": ["web"]}]
        )
    for reservation in pages["Reservations"]:
        for instance in reservation["Instances"]:
            if live and instance["State"]["Name"] in ("terminated", "shutting-down"):
                continue
            found[instance["InstanceId"]] = instance
    return found


class Manager:
    """The parts of a manager infrastructure needs, on one database file."""

    def __init__(
        self, tmp_path: Path, registry: MemoryKeyRegistry, settings: InfraSettings = FAST
    ) -> None:
        self.db = store.Database.for_data_dir(tmp_path / "data")
        self.host_key = keys.load_or_create_host_key(tmp_path / "data")
        self.infra = InfraService(self.db, SqlQueueConnector(self.db), settings=settings)

        def server(runner: EngineRunner) -> JobServer:
            return JobServer(
                registry=registry, host_key=self.host_key, on_result=runner.result_received,
                on_lost=runner.job_lost, host="127.0.0.1", port=0, heartbeat_interval=0.2,
            )  # fmt: skip

        self.runner = EngineRunner(self.db, server, worker_grace=30)
        self.infra.attach(self.runner)
        self.runner.local_checks["infra"] = self.infra.check_outcome
        self.runner.slot_address = self.infra.slot_address
        self.intake = ConfigIntake(self.db, clock=utcnow, on_import=self.runner.config_imported)
        self.tasks: list[asyncio.Task[None]] = []

    @property
    def server(self) -> JobServer:
        return self.runner.server

    async def start(self) -> None:
        await self.db.migrate()
        await self.runner.start()
        await self.infra.start()
        self.runner.owner = self.infra.owner
        self.tasks = [
            asyncio.create_task(self.runner.run()),
            asyncio.create_task(self.infra.run(interval=0.1)),
        ]

    async def load(self, doc: dict[str, Any]) -> None:
        outcome = await self.intake.submit(json.dumps(doc).encode(), source="test")
        assert outcome.accepted, outcome.errors
        async with self.db.session() as session:
            platforms = await store.list_objects(session, "platforms")
            resources = await store.list_objects(session, "infrastructure")
        self.infra.configure([r.spec for r in platforms], [r.spec for r in resources])

    def check(self) -> CheckOutcome | str:
        return self.infra.check_outcome({"resource": "web", "platform": "cloud"})

    def converged(self, count: int) -> bool:
        outcome = self.check()
        return isinstance(outcome, CheckOutcome) and outcome.output == f"{count}/{count} converged"

    async def creates(self) -> list[QueuedJob]:
        jobs = await self.infra.journal.list_jobs()
        return sorted((j for j in jobs if j.spec.get("op") == "create"), key=lambda j: j.id)

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.db.aclose()


def enrol(tmp_path: Path, registry: MemoryKeyRegistry, name: str, zones: list[str]) -> Path:
    path = tmp_path / f"{name}.key"
    key = asyncssh.generate_private_key("ssh-ed25519")
    path.write_bytes(key.export_private_key())
    path.chmod(0o600)
    registry.add(name, keys.canonical_public_key(key), zones)
    return path


class Workers:
    """In-process `WorkerConnection`s, each recording the payload kind of every job."""

    def __init__(self, tmp_path: Path, registry: MemoryKeyRegistry) -> None:
        self.tmp_path = tmp_path
        self.registry = registry
        self.kinds: dict[str, list[str]] = {}
        self.running: list[tuple[WorkerConnection, asyncio.Task[None], InfraRunner]] = []

    async def start(self, manager: Manager, name: str, zones: list[str]) -> None:
        path = enrol(self.tmp_path, self.registry, name, zones)
        settings = WorkerSettings(
            host="127.0.0.1", port=manager.server.port, key_path=path,
            manager_fingerprint=keys.fingerprint(manager.host_key), name=name,
            backoff_base=0.05, backoff_cap=0.2,
        )  # fmt: skip
        infra = InfraRunner()
        seen = self.kinds.setdefault(name, [])
        inner = job_runner(infra=infra)

        async def recording(job: Job) -> CheckOutcome:
            seen.append(job.payload.kind)
            return await inner(job)

        worker = WorkerConnection(settings, recording, load=lambda: 0.0)
        self.running.append((worker, asyncio.create_task(worker.run()), infra))
        await asyncio.wait_for(worker.connected.wait(), 10)

    async def stop(self) -> None:
        for worker, _, _ in self.running:
            worker.stop()
        await asyncio.gather(*(t for _, t, _ in self.running), return_exceptions=True)
        for _, _, infra in self.running:
            await infra.aclose()
        self.running = []


@pytest.fixture
async def site(
    tmp_path: Path, moto: Moto, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[Manager, MemoryKeyRegistry, str]]:
    monkeypatch.setenv("WK_TEST_AWS", SECRET)
    install_child_watcher()
    registry = MemoryKeyRegistry()
    manager = Manager(tmp_path, registry, getattr(request, "param", FAST))
    await manager.start()
    try:
        yield manager, registry, make_subnet(moto)
    finally:
        await manager.stop()


async def test_infra_jobs_reach_only_the_workers_of_the_platforms_zone(
    tmp_path: Path, moto: Moto, site: tuple[Manager, MemoryKeyRegistry, str]
) -> None:
    manager, registry, subnet = site
    workers = Workers(tmp_path, registry)
    try:
        await workers.start(manager, "w-dmz", ["dmz"])
        await workers.start(manager, "w-eu", ["eu"])
        await manager.load(document(moto.url, subnet, count=2))
        await wait_until(lambda: len(instances(moto)) == 2, within=30, what="2 instances")
        await wait_until(lambda: manager.converged(2), within=20, what="infra:web 2/2")
        # The dmz worker was busy all along, with the checks of its zone.
        await wait_until(lambda: "check" in workers.kinds["w-dmz"], within=20,
                         what="the dmz worker ran its zone's check")  # fmt: skip
        dmz, eu = workers.kinds["w-dmz"], workers.kinds["w-eu"]
        assert "infra" not in dmz, dmz
        assert eu.count("infra") >= 3, eu  # an observation and two creates at least
        creates = await manager.creates()
        assert [j.state for j in creates] == [JobState.SUCCEEDED] * 2
        assert {j.worker for j in creates} == {"w-eu"}
        found = instances(moto)
        assert sorted(tag(i, "watchkeeper:slot") for i in found.values()) == ["web-0", "web-1"]
        assert {tag(i, "watchkeeper:owner") for i in found.values()} == {manager.infra.owner}
        assert {tag(i, "watchkeeper:op") for i in found.values()} == {j.wire_id for j in creates}
    finally:
        await workers.stop()


class Processes:
    """``watchkeeper worker`` processes, stopped (SIGKILL) by their PID at the end."""

    def __init__(self, tmp_path: Path, registry: MemoryKeyRegistry) -> None:
        self.tmp_path = tmp_path
        self.registry = registry
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: list[IO[bytes]] = []

    def start(self, manager: Manager, name: str, zones: list[str]) -> None:
        path = enrol(self.tmp_path, self.registry, name, zones)
        log = (self.tmp_path / f"{name}.log").open("ab")
        self.logs.append(log)
        self.procs[name] = subprocess.Popen(
            [*WK, "worker", "--manager", f"127.0.0.1:{manager.server.port}", "--key", str(path),
             "--manager-fingerprint", keys.fingerprint(manager.host_key), "--name", name,
             "--concurrency", "4", "--max-load", "1000", "--min-memory", "0"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
            env={**os.environ, "WK_TEST_AWS": SECRET},
        )  # fmt: skip

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
        for log in self.logs:
            log.close()


async def test_a_worker_killed_mid_create_leaves_exactly_the_count(
    tmp_path: Path,
    moto: Moto,
    fault_proxy: FaultProxy,
    site: tuple[Manager, MemoryKeyRegistry, str],
) -> None:
    manager, registry, subnet = site
    procs = Processes(tmp_path, registry)
    try:
        procs.start(manager, "w1", ["eu"])
        procs.start(manager, "w2", ["eu"])
        await wait_until(
            lambda: {w.name for w in manager.server.workers()} == {"w1", "w2"},
            within=30, what="both eu workers connected",
        )  # fmt: skip
        # The first RunInstances reaches moto; its reply never comes back.
        fault_proxy.arm("hold-reply", count=1, only="RunInstances")
        await manager.load(document(fault_proxy.url, subnet, count=3))

        async def one_held_two_made() -> bool:
            states = [j.state for j in await manager.creates()]
            return fault_proxy.held == 1 and sorted(s.value for s in states) == [
                "dispatched", "succeeded", "succeeded",
            ]  # fmt: skip

        await wait_until(one_held_two_made, within=30, what="one create held, two made")
        [held] = [j for j in await manager.creates() if j.state is JobState.DISPATCHED]
        before = instances(moto)
        assert len(before) == 3  # the held create's instance exists: moto made it
        by_slot = {tag(i, "watchkeeper:slot"): iid for iid, i in before.items()}
        assert sorted(by_slot) == ["web-0", "web-1", "web-2"]
        assert tag(before[by_slot[held.subject]], "watchkeeper:op") == held.wire_id
        holder = manager.server._leases[held.wire_id].worker.name
        survivor = "w2" if holder == "w1" else "w1"

        procs.kill(holder)
        fault_proxy.arm("off")  # the held reply is dropped: nobody is left to read it

        async def verified() -> bool:
            job = await manager.infra.journal.get(held.id)
            return job is not None and job.state is JobState.SUCCEEDED

        await wait_until(verified, within=30, what="the lost create verified by observation")
        await wait_until(lambda: manager.converged(3), within=20, what="infra:web 3/3")
        events = [e.event for e in reversed(await manager.infra.journal.list_audit(job_id=held.id))]
        assert "lost" in events and events[-1] == "verified", events
        assert {w.name for w in manager.server.workers()} == {survivor}
        observed = await manager.infra.observations.list_jobs(states=[JobState.SUCCEEDED])
        assert max(observed, key=lambda j: j.id).worker == survivor

        # Exactly three instances, the same ones: the lost create was not made again.
        after = instances(moto)
        assert after.keys() == before.keys()
        assert len(instances(moto, live=False)) == 3
        creates = await manager.creates()
        assert len(creates) == 3 and {j.subject for j in creates} == set(by_slot)
        assert {tag(i, "watchkeeper:slot"): iid for iid, i in after.items()} == by_slot
    finally:
        procs.stop()


#: An observe job may take 2 s; a result later than 1 s past its deadline is given up on.
SHORT = InfraSettings(observe_timeout=2, apply_timeout=30, confirm_after=0.2, result_grace=1)


@pytest.mark.parametrize("site", [SHORT], indirect=True, ids=["short-leases"])
async def test_a_hung_observation_does_not_stop_the_platform_for_ever(
    tmp_path: Path,
    moto: Moto,
    fault_proxy: FaultProxy,
    site: tuple[Manager, MemoryKeyRegistry, str],
) -> None:
    manager, registry, subnet = site
    workers = Workers(tmp_path, registry)
    try:
        await workers.start(manager, "w-eu", ["eu"])
        # The first DescribeInstances hangs (as an EC2 endpoint can); the rest answer.
        fault_proxy.arm("hang", count=1, only="DescribeInstances")
        await manager.load(document(fault_proxy.url, subnet, count=1))
        await wait_until(lambda: fault_proxy.faulted == 1, within=20, what="the observe hangs")
        # Deadline 7 s after dispatch, and the worker gives up at 12 s, too late to count
        # (the job server dropped the lease at 7 s without a word): the stage gives up on
        # the observe at its lease (8 s), observes again and creates.
        await wait_until(lambda: len(instances(moto)) == 1, within=25,
                         what="the platform observed again and provisioned")  # fmt: skip
        hung = await manager.infra.observations.get(1)
        assert hung is not None and hung.state is JobState.FAILED
        await wait_until(lambda: manager.converged(1), within=20, what="infra:web 1/1")
        assert len(instances(moto, live=False)) == 1
    finally:
        await workers.stop()
