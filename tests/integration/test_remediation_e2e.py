"""Remediation end to end on loopback: the real job server, a real worker, a real TCP service.

The manager's parts are built by hand (store, intake, job server, engine runner with the
remediation service as its downstream), as `Manager` will wire them. The service under
watch is a small listener process; the test kills it, the tcp check goes CRITICAL HARD,
the remediation job is persisted and dispatched, the worker's action starts the listener
again, the re-check is OK and the audit shows every step. A second test stops the manager
while a job waits for a worker and shows the next manager runs it exactly once.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import asyncssh
import pytest
from pydantic import BaseModel

from tests.fixtures.listener import Service
from tests.waiting import wait_until
from watchkeeper import store
from watchkeeper.clock import utcnow
from watchkeeper.document.platforms import PlatformConfig
from watchkeeper.infra.providers import Machine
from watchkeeper.jobs.states import JobState
from watchkeeper.manager.intake import ConfigIntake
from watchkeeper.manager.runner import EngineRunner
from watchkeeper.notify.notification import Notification
from watchkeeper.plugins import PROVIDERS
from watchkeeper.remediation import records
from watchkeeper.remediation.service import RemediationService, RemediationSettings
from watchkeeper.results import CheckState
from watchkeeper.transport import keys
from watchkeeper.transport.client import WorkerConnection, WorkerSettings
from watchkeeper.transport.registry import MemoryKeyRegistry
from watchkeeper.transport.server import JobServer
from watchkeeper.worker.executors import install_child_watcher
from watchkeeper.worker.runner import job_runner

#: The owner id the manager's platform actions carry (its stages read it from the store).
OWNER = "wktest0001"


def document(service: Service, action: dict[str, Any]) -> dict[str, Any]:
    fast = {"interval": "1s", "retry_interval": "1s", "max_attempts": 2, "timeout": "2s"}
    return {
        "schema": "watchkeeper/v1",
        "zones": [{"name": "core"}, {"name": "ops"}],
        "hosts": [{"name": "h1", "address": "127.0.0.1", "zone": "core"}],
        "services": [{"name": "web", "hosts": ["h1"], **fast,
                      "check": {"kind": "tcp", "port": service.port}}],
        # An ec2 platform in the document; the test swaps the ec2 provider for a loopback
        # one where it needs a platform that acts (the document is validated against
        # the providers registered when it is loaded, so it names a built-in kind).
        "platforms": [{"name": "lab", "provider": "ec2", "zone": "ops",
                       "options": {"region": "lab-1"}}],
        "remediations": [{"name": "restart-web", "when": {"service": "web"},
                          "action": action, "cooldown": "0s", "max_attempts": 2,
                          "notifications": ["ops"]}],
        "notifications": [{"name": "ops", "kind": "webhook", "url": "http://127.0.0.1:9/hook"}],
    }  # fmt: skip


class Manager:
    """The parts of a manager remediation needs, on one database file."""

    def __init__(self, tmp_path: Path, registry: MemoryKeyRegistry) -> None:
        self.db = store.Database.for_data_dir(tmp_path / "data")
        self.host_key = keys.load_or_create_host_key(tmp_path / "data")
        self.notes: list[Notification] = []
        self.service = RemediationService(
            self.db, None, self.notes.append, settings=RemediationSettings(tick_interval=0.05)
        )
        self.service.owner = OWNER  # the store's cluster id, as the manager's stages set it

        def server(runner: EngineRunner) -> JobServer:
            return JobServer(
                registry=registry,
                host_key=self.host_key,
                on_result=runner.result_received,
                on_lost=runner.job_lost,
                host="127.0.0.1",
                port=0,
                heartbeat_interval=0.2,
            )

        self.runner = EngineRunner(self.db, server, worker_grace=30, downstream=[self.service])
        self.service.attach(self.runner)
        self.intake = ConfigIntake(self.db, clock=utcnow, on_import=self.runner.config_imported)
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self.db.migrate()
        await self.runner.start()
        self.tasks = [
            asyncio.create_task(self.runner.run()),
            asyncio.create_task(self.service.run()),
        ]
        await self.configure()

    async def configure(self) -> None:
        """What the lead's wiring does after every import: hand the rules to the service."""
        async with self.db.session() as session:
            self.service.configure(
                await store.list_objects(session, "remediations"),
                await store.list_objects(session, "actions"),
                await store.list_objects(session, "platforms"),
            )

    async def load(self, doc: dict[str, Any]) -> None:
        outcome = await self.intake.submit(json.dumps(doc).encode(), source="test")
        assert outcome.accepted, outcome.errors
        await self.configure()

    async def jobs(self) -> list[records.RemediationJob]:
        return list(reversed(await records.list_jobs(self.service.queue)))

    async def audit(self) -> list[str]:
        return [e.event for e in reversed(await self.service.queue.list_audit(limit=1000))]

    def state(self) -> CheckState | None:
        status = self.runner.engine.statuses.get("h1!web")
        return None if status is None or status.pending else status.state

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.db.aclose()


class Workers:
    def __init__(self, tmp_path: Path, registry: MemoryKeyRegistry) -> None:
        self.tmp_path = tmp_path
        self.registry = registry
        self.running: list[tuple[WorkerConnection, asyncio.Task[None]]] = []

    async def start(self, manager: Manager, name: str, zones: list[str]) -> None:
        path = self.tmp_path / f"{name}.key"
        if not path.exists():
            key = asyncssh.generate_private_key("ssh-ed25519")
            path.write_bytes(key.export_private_key())
            path.chmod(0o600)
            self.registry.add(name, keys.canonical_public_key(key), zones)
        settings = WorkerSettings(
            host="127.0.0.1",
            port=manager.runner.server.port,
            key_path=path,
            manager_fingerprint=keys.fingerprint(manager.host_key),
            name=name,
            backoff_base=0.05,
            backoff_cap=0.2,
        )
        worker = WorkerConnection(settings, job_runner(), load=lambda: 0.0)
        self.running.append((worker, asyncio.create_task(worker.run())))
        await asyncio.wait_for(worker.connected.wait(), 10)

    async def stop(self) -> None:
        for worker, _ in self.running:
            worker.stop()
        await asyncio.gather(*(t for _, t in self.running), return_exceptions=True)
        self.running = []


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[tuple[Service, MemoryKeyRegistry, Workers]]:
    install_child_watcher()
    service = Service(tmp_path)
    registry = MemoryKeyRegistry()
    workers = Workers(tmp_path, registry)
    try:
        yield service, registry, workers
    finally:
        await workers.stop()
        service.stop()


async def test_a_stopped_service_is_restarted_by_its_remediation(
    tmp_path: Path, parts: tuple[Service, MemoryKeyRegistry, Workers]
) -> None:
    service, registry, workers = parts
    service.start()
    manager = Manager(tmp_path, registry)
    await manager.start()
    try:
        await workers.start(manager, "w1", ["core"])
        await manager.load(document(service, {"kind": "command", "command": service.launch}))
        await wait_until(lambda: manager.state() is CheckState.OK, what="the check is OK")

        service.stop()
        await wait_until(_succeeded(manager), within=30, what="the remediation succeeded")
        [job] = await manager.jobs()
        assert job.rule == "restart-web" and job.target == "h1!web" and job.trigger == "CRITICAL"
        assert job.output is not None and "listener started on port" in job.output
        assert "re-check OK" in job.output
        assert await manager.audit() == [
            "queued", "dispatched", "action_succeeded", "resolved",
        ]  # fmt: skip
        assert manager.state() is CheckState.OK
        assert service.pidfile.exists()  # the action's listener is the one answering
        assert manager.notes == []
    finally:
        await workers.stop()
        await manager.stop()


def _succeeded(manager: Manager) -> Any:
    async def check() -> bool:
        return any(j.state is JobState.SUCCEEDED for j in await manager.jobs())

    return check


async def test_a_job_queued_across_a_manager_restart_runs_exactly_once(
    tmp_path: Path, parts: tuple[Service, MemoryKeyRegistry, Workers]
) -> None:
    service, registry, workers = parts
    calls: list[Mapping[str, Any]] = []

    class LoopbackPlatform(PlatformConfig):
        provider: Literal["ec2"]

    class Loopback:
        """A provider with one machine, h1's slot, whose start starts the local service."""

        kind: ClassVar[str] = "ec2"
        Config: ClassVar[type[BaseModel]] = LoopbackPlatform
        capabilities: ClassVar[frozenset[str]] = frozenset({"observe", "start"})

        def __init__(self, platform: Mapping[str, Any]) -> None:
            self.platform = platform

        async def observe(self, owner: str) -> list[Machine]:
            return [Machine(cloud_id="lo-1", resource="lab", slot="h1", owner=OWNER,
                            state="stopped")]  # fmt: skip

        async def start(self, machine: Machine) -> None:
            calls.append(self.platform)
            await asyncio.to_thread(service.start)

        async def aclose(self) -> None:
            return None

    real = PROVIDERS.get("ec2")
    PROVIDERS.unregister("ec2")
    PROVIDERS.register(Loopback)
    action = {"kind": "platform", "platform": "lab", "operation": "start"}
    first = Manager(tmp_path, registry)
    await first.start()
    try:
        # Checks run in zone core; the platform's zone (ops) has no worker yet.
        await workers.start(first, "w-core", ["core"])
        await first.load(document(service, action))

        async def queued_and_tried() -> bool:
            jobs = await first.jobs()
            live = first.service._live
            return (
                len(jobs) == 1
                and jobs[0].state is JobState.QUEUED
                and any(lv.tries > 0 for lv in live.values())
            )

        await wait_until(queued_and_tried, within=30, what="the job waits for an ops worker")
        await workers.stop()
    finally:
        await first.stop()
    assert calls == []

    second = Manager(tmp_path, registry)
    await second.start()
    try:
        await workers.start(second, "w-core", ["core"])
        await workers.start(second, "w-ops", ["ops"])
        await wait_until(_succeeded(second), within=30, what="the queued job ran")
        [job] = await second.jobs()
        assert job.zone == "ops" and job.output is not None and "start h1 (lo-1)" in job.output
        assert len(calls) == 1 and calls[0]["name"] == "lab"
        assert await second.audit() == [
            "queued", "dispatched", "action_succeeded", "resolved",
        ]  # fmt: skip
        await wait_until(lambda: second.state() is CheckState.OK, what="the check is OK")
        assert len(calls) == 1
    finally:
        PROVIDERS.unregister("ec2")
        PROVIDERS.register(real)
        await workers.stop()
        await second.stop()
