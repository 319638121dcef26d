"""Deploy jobs through the real SSH job server to real workers: only a deploy worker of the
host's zone gets them.

The manager's parts are built by hand as `watchkeeper.manager.stages` wires them (store,
engine runner with its job server, the deployment stage attached to it); three workers
dial it with keys enrolled in a `MemoryKeyRegistry`, each recording the payload kind of
every job it gets:

* ``w-other``: zone ``other``, label ``deploy=true`` (a deploy worker of another zone);
* ``w-plain``: zone ``dc1``, no label (a worker of the zone that may not deploy);
* ``w-deploy``: zone ``dc1``, label ``deploy=true``, started last.

Until ``w-deploy`` connects the host's deploy waits, named on ``deploy:legacy1``; then
it alone runs it, against a real host (`tests.fixtures.debian_lxc`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from tests.fixtures.debian_lxc import BUILD_TIMEOUT, DebianLab, debian_lab
from tests.waiting import wait_until
from watchkeeper import store
from watchkeeper.clock import utcnow
from watchkeeper.deploy.service import DeployService
from watchkeeper.manager.intake import ConfigIntake
from watchkeeper.manager.runner import EngineRunner
from watchkeeper.results import CheckOutcome
from watchkeeper.transport import keys
from watchkeeper.transport.client import WorkerConnection, WorkerSettings
from watchkeeper.transport.protocol import Job
from watchkeeper.transport.registry import MemoryKeyRegistry
from watchkeeper.transport.server import JobServer
from watchkeeper.worker.deploy import DeployRunner
from watchkeeper.worker.executors import install_child_watcher
from watchkeeper.worker.runner import job_runner

pytestmark = pytest.mark.timeout(BUILD_TIMEOUT)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DebianLab]:
    with debian_lab(tmp_path_factory.mktemp("deb")) as made:
        yield made


class Manager:
    def __init__(self, tmp_path: Path, registry: MemoryKeyRegistry) -> None:
        self.db = store.Database.for_data_dir(tmp_path / "data")
        self.host_key = keys.load_or_create_host_key(tmp_path / "data")
        self.deploy = DeployService(self.db)
        self.deploy.fingerprint = keys.fingerprint(self.host_key)

        def server(runner: EngineRunner) -> JobServer:
            return JobServer(
                registry=registry, host_key=self.host_key, on_result=runner.result_received,
                on_lost=runner.job_lost, host="127.0.0.1", port=0, heartbeat_interval=0.2,
            )  # fmt: skip

        self.runner = EngineRunner(self.db, server, worker_grace=30)
        self.deploy.attach(self.runner)
        self.runner.local_checks["deploy"] = self.deploy.check_outcome
        self.intake = ConfigIntake(self.db, clock=utcnow, on_import=self.runner.config_imported)
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self.db.migrate()
        await self.runner.start()
        await self.deploy.start()
        self.tasks = [
            asyncio.create_task(self.runner.run()),
            asyncio.create_task(self.deploy.run(interval=0.1)),
        ]

    async def load(self, doc: dict[str, Any]) -> None:
        outcome = await self.intake.submit(json.dumps(doc).encode(), source="test")
        assert outcome.accepted, outcome.errors
        async with self.db.session() as session:
            deployments = await store.list_objects(session, "deployments")
            hosts = await store.list_objects(session, "hosts")
        self.deploy.configure([r.spec for r in deployments], [r.spec for r in hosts])

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.runner.server.aclose()
        await self.db.aclose()


class Workers:
    def __init__(self, tmp_path: Path, registry: MemoryKeyRegistry) -> None:
        self.tmp_path = tmp_path
        self.registry = registry
        self.kinds: dict[str, list[str]] = {}
        self.running: list[tuple[WorkerConnection, asyncio.Task[None]]] = []

    async def start(
        self, manager: Manager, name: str, zones: list[str], labels: dict[str, str]
    ) -> None:
        path = self.tmp_path / name / "worker.key"
        path.parent.mkdir(mode=0o700)
        key = asyncssh.generate_private_key("ssh-ed25519")
        path.write_bytes(key.export_private_key())
        path.chmod(0o600)
        self.registry.add(name, keys.canonical_public_key(key), zones, labels)
        settings = WorkerSettings(
            host="127.0.0.1", port=manager.runner.server.port, key_path=path,
            manager_fingerprint=keys.fingerprint(manager.host_key), name=name,
            backoff_base=0.05, backoff_cap=0.2,
        )  # fmt: skip
        seen = self.kinds.setdefault(name, [])
        inner = job_runner(deploy=DeployRunner(state_dir=path.parent))

        async def recording(job: Job) -> CheckOutcome:
            seen.append(job.payload.kind)
            return await inner(job)

        worker = WorkerConnection(settings, recording, load=lambda: 0.0)
        self.running.append((worker, asyncio.create_task(worker.run())))
        await asyncio.wait_for(worker.connected.wait(), 10)

    async def stop(self) -> None:
        for worker, _ in self.running:
            worker.stop()
        await asyncio.gather(*(t for _, t in self.running), return_exceptions=True)


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[tuple[Manager, Workers]]:
    install_child_watcher()
    registry = MemoryKeyRegistry()
    manager = Manager(tmp_path, registry)
    await manager.start()
    workers = Workers(tmp_path, registry)
    try:
        yield manager, workers
    finally:
        await workers.stop()
        await manager.stop()


async def test_only_a_deploy_worker_of_the_hosts_zone_gets_its_deploys(
    tmp_path: Path, lab: DebianLab, site: tuple[Manager, Workers]
) -> None:
    manager, workers = site
    host = await asyncio.to_thread(lab.host, "legacy1", 0)
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(lab.known_hosts_line(host) + "\n")
    await workers.start(manager, "w-other", ["other"], {"deploy": "true"})
    await workers.start(manager, "w-plain", ["dc1"], {})
    doc = {
        "schema": "watchkeeper/v1",
        "zones": [{"name": "dc1"}, {"name": "other"}],
        "hosts": [{"name": "legacy1", "address": host.address, "zone": "dc1"}],
        "deployments": [{
            "name": "base", "hosts": ["legacy1"],
            "ssh": {"key": f"file:{lab.client_key}", "known_hosts": f"file:{known_hosts}"},
            "files": [{"path": "/etc/motd", "content": "managed\n"}],
        }],
    }  # fmt: skip
    await manager.load(doc)

    def outcome() -> CheckOutcome | str:
        return manager.deploy.check_outcome({"deployment": "base", "host": "legacy1"})

    await wait_until(
        lambda: str(outcome()).startswith("waiting for a deploy worker of zone dc1"),
        within=10, what="the deploy waiting for a deploy worker of dc1",
    )  # fmt: skip
    await workers.start(manager, "w-deploy", ["dc1"], {"deploy": "true"})
    await wait_until(
        lambda: lab.run("legacy1", "cat", "/etc/motd") == "managed\n", within=60,
        what="/etc/motd deployed",
    )  # fmt: skip
    in_sync = "converged: 1 file in sync"
    await wait_until(
        lambda: isinstance(o := outcome(), CheckOutcome) and o.output == in_sync,
        within=30, what="deploy:legacy1 OK after the verifying check",
    )  # fmt: skip
    assert "deploy" not in workers.kinds["w-other"]
    assert "deploy" not in workers.kinds["w-plain"]
    assert workers.kinds["w-deploy"].count("deploy") == 3  # check, apply, verifying check
