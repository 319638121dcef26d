"""Agents: a worker on the checked host, enrolled ``--agent-for HOST``, runs that host's
agent checks and nothing else; plain workers never get agent checks. Real SSH on loopback,
real plugins, and the ``watchkeeper worker`` command as its own process."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncssh
import pytest

from tests.fixtures.jobserver import CHECK_DUMMY, HAVE_CHECK_DUMMY, Harness, eventually
from watchkeeper import store
from watchkeeper.jobs.payloads import CheckPayload
from watchkeeper.results import CheckState
from watchkeeper.runtime import Manager, ManagerSettings
from watchkeeper.transport import keys
from watchkeeper.transport.client import WorkerConnection, WorkerSettings
from watchkeeper.transport.protocol import Job
from watchkeeper.worker.runner import job_runner

pytestmark = pytest.mark.skipif(not HAVE_CHECK_DUMMY, reason="check_dummy not installed")


def agent_job(job_id: str, host: str, *argv: str, agent: bool = True) -> Job:
    kind = "agent" if agent else "plugin"
    return Job(
        job_id=job_id,
        zone="dmz",
        payload=CheckPayload(
            key=f"{host}!disk",
            check={"kind": kind, "command": [CHECK_DUMMY, *argv]},
            address="127.0.0.1",
            timeout=5.0,
        ),
        deadline=time.time() + 30,
        token=1,
        agent=host if agent else None,
    )


async def test_agent_jobs_reach_only_their_hosts_agent(h: Harness) -> None:
    await h.start_worker("plain", ["dmz"], job_runner())
    key = h.enrol("web1-agent", ["dmz"], agent_for="web1")
    agent = h.settings("web1-agent", key)
    connection = WorkerConnection(agent, job_runner(), load=lambda: 0.0)
    task = asyncio.create_task(connection.run())
    h.workers.append((connection, task))
    await eventually(lambda: any(w.name == "web1-agent" for w in h.server.workers()))
    assert [w.agent_for for w in h.server.workers()] == [None, "web1"]

    assert await h.server.submit(agent_job("a1", "web1", "1", "disk 85% | used=85%;80;90"))
    assert await h.server.submit(agent_job("p1", "web1", "0", "remote", agent=False))
    assert not await h.server.submit(agent_job("a2", "web2", "0", "nobody"))
    await eventually(lambda: len(h.results) == 2)
    by_job = {result.job_id: (worker, result) for worker, result in h.results}
    worker, result = by_job["a1"]
    assert worker == "web1-agent"
    assert result.outcome().state is CheckState.WARNING
    assert [(m.label, m.value, m.uom) for m in result.outcome().metrics] == [("used", 85, "%")]
    assert by_job["p1"][0] == "plain"

    assert h.server.zone_online("agent:web1") and not h.server.zone_online("agent:web2")
    assert h.server.zone_online("dmz")
    h.workers[0][0].stop()
    await eventually(lambda: not h.server.zone_online("dmz"))
    assert h.server.zone_online("agent:web1")  # an agent does not keep its zone alive


def watchkeeper_worker(h: Harness, key: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "watchkeeper",
            "worker",
            "--manager",
            f"127.0.0.1:{h.server.port}",
            "--key",
            str(key),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "WATCHKEEPER_LOG_LEVEL": "INFO"},
    )


async def test_the_worker_command_refuses_a_wrong_manager_fingerprint(h: Harness) -> None:
    key = h.enrol("w", ["dmz"])
    wrong = keys.fingerprint(asyncssh.generate_private_key("ssh-ed25519"))
    proc = watchkeeper_worker(h, key, "--manager-fingerprint", wrong)
    out, err = await asyncio.to_thread(proc.communicate, timeout=20)
    assert proc.returncode == 2, (out, err)
    assert wrong in err and h.fingerprint in err and "refusing to connect" in err
    assert h.server.workers() == []


@pytest.mark.parametrize(
    ("agent_for", "granted"),
    [("web1", "as the agent of web1"), (None, "as a worker for zones dmz")],
)
async def test_a_worker_started_as_another_hosts_agent_exits(
    h: Harness, agent_for: str | None, granted: str
) -> None:
    key = h.enrol("k", ["dmz"], agent_for=agent_for)
    proc = watchkeeper_worker(h, key, "--manager-fingerprint", h.fingerprint, "--agent-for", "web2")
    out, err = await asyncio.to_thread(proc.communicate, timeout=30)
    assert proc.returncode == 2, (out, err)
    assert (
        "this worker was started as the agent of web2 (--agent-for), but the manager enrolled "
        f"its key {granted}"
    ) in err
    assert "worker-key add k --agent-for web2" in err


async def test_the_worker_command_serves_as_an_agent(h: Harness) -> None:
    key = h.enrol("web1-agent", ["dmz"], agent_for="web1")
    proc = watchkeeper_worker(
        h, key, "--manager-fingerprint", h.fingerprint, "--concurrency", "2", "--agent-for", "web1"
    )
    try:
        await eventually(lambda: [w.name for w in h.server.workers()] == ["web1-agent"], within=20)
        assert await h.server.submit(agent_job("a1", "web1", "2", "CRITICAL - / is full"))
        await eventually(lambda: len(h.results) == 1, within=20)
        worker, result = h.results[0]
        assert (worker, result.outcome().state) == ("web1-agent", CheckState.CRITICAL)
        assert result.output == "CRITICAL: CRITICAL - / is full"  # check_dummy adds a prefix
        # The worker says how its link is in status.json beside its key, for a HEALTHCHECK.
        health = await asyncio.to_thread(watchkeeper_health, key.parent)
        assert health.returncode == 0, (health.stdout, health.stderr)
        assert health.stdout.startswith(f"healthy: worker connected to 127.0.0.1:{h.server.port}")
    finally:
        proc.terminate()  # SIGTERM drains: nothing is in flight, so it stops at once
        _, err = await asyncio.to_thread(proc.communicate, timeout=20)
    assert proc.returncode == 0, err
    assert "stopped" in err  # a daemon's log goes to stderr
    health = await asyncio.to_thread(watchkeeper_health, key.parent)
    assert health.returncode == 1, health.stdout
    assert health.stdout.startswith("unhealthy: worker not connected to 127.0.0.1:")


def watchkeeper_health(data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "watchkeeper", "health", "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip


async def test_the_manager_runs_agent_checks_only_on_the_hosts_agent(tmp_path: Path) -> None:
    fast = {"interval": "1s", "retry_interval": "1s", "max_attempts": 1, "timeout": "5s"}
    source = tmp_path / "doc.json"
    source.write_text(
        json.dumps(
            {
                "schema": "watchkeeper/v1",
                "zones": [{"name": "core"}],
                "hosts": [{"name": "h1", "address": "127.0.0.1", "zone": "core"}],
                "services": [
                    {"name": "remote", "hosts": ["h1"], **fast,
                     "check": {"kind": "plugin", "command": [CHECK_DUMMY, "0", "remote"]}},
                    {"name": "local", "hosts": ["h1"], **fast,
                     "check": {"kind": "agent", "command": [CHECK_DUMMY, "1", "on h1"]}},
                ],
            }
        )
    )  # fmt: skip
    settings = ManagerSettings(
        source=str(source),
        data_dir=tmp_path / "data",
        http_port=0,
        jobs_port=0,
        poll_interval=0.1,
        embedded_worker=True,
        worker_grace=0.5,
    )
    mgr = Manager(settings)
    ready = asyncio.Event()

    async def started() -> None:
        ready.set()

    task = asyncio.create_task(mgr.run(started))
    agent: WorkerConnection | None = None
    try:
        async with asyncio.timeout(10):
            await ready.wait()

        async def saved() -> dict[str, tuple[str, str]]:
            async with mgr.db.session() as session:
                found = await store.list_check_states(session)
            return {
                k: ("PENDING" if s.pending else s.state.name, s.not_run or s.output)
                for k, s in found.items()
            }

        async def reached(expected: dict[str, tuple[str, str]]) -> bool:
            current = await saved()
            return all(current.get(k) == v for k, v in expected.items())

        # No agent yet: the host's agent check is not run, and says why; its other check
        # is not affected; the missing agent is an alarm of the host's.
        await eventually(
            lambda: reached(
                {
                    "h1!remote": ("OK", "OK: remote"),
                    "h1!local": ("PENDING", "no agent connected for host h1"),
                }
            ),
            within=20,
            what="h1!remote OK, h1!local not run for want of an agent",
        )
        await eventually(
            lambda: [a.key for a in mgr.stages.alarms.book.alarms()] == ["zone:agent:h1"],
            within=20,
            what="an alarm for h1's missing agent",
        )
        key = asyncssh.generate_private_key("ssh-ed25519")
        key_path = tmp_path / "agent.key"
        key_path.write_bytes(key.export_private_key())
        await store.add_worker_key(
            mgr.db,
            name="h1-agent",
            public_key=keys.canonical_public_key(key),
            fingerprint=keys.fingerprint(key),
            zones=["core"],
            labels={},
            agent_for="h1",
            now=datetime.now(UTC),
        )
        assert mgr.runner is not None
        agent = WorkerConnection(
            WorkerSettings(
                host="127.0.0.1",
                port=mgr.jobs_port,
                key_path=key_path,
                manager_fingerprint=keys.fingerprint(mgr.runner.server._host_key),
                name="h1-agent",
                backoff_base=0.05,
                backoff_cap=0.2,
            ),
            job_runner(),
            load=lambda: 0.0,
        )
        agent_task = asyncio.create_task(agent.run())
        await eventually(
            lambda: reached(
                {"h1!local": ("WARNING", "WARNING: on h1"), "h1!remote": ("OK", "OK: remote")}
            ),
            within=20,
            what="h1!local run by h1's agent",
        )
        workers = {w.name: w.agent_for for w in mgr.runner.server.workers()}
        assert workers == {"embedded": None, "h1-agent": "h1"}
        await eventually(
            lambda: [a.key for a in mgr.stages.alarms.book.alarms()] == ["h1!local"],
            within=20,
            what="the missing agent's alarm resolved (h1!local's WARNING open)",
        )
    finally:
        if agent is not None:
            agent.stop()
            await asyncio.wait_for(asyncio.gather(agent_task, return_exceptions=True), 10)
        mgr.stop()
        await asyncio.wait_for(task, 10)
