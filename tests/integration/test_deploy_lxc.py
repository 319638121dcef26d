"""Deployments end to end on real unmanaged hosts: LXC Debian clones with sshd as PID 1.

The manager of ``watchkeeper up`` (its embedded worker carries the label ``deploy=true``)
deploys the agent and a host state over SSH with strict host keys, the admin approves the
agent's key with ``watchkeeper worker-key approve``, and the agent's own checks go OK.
Every assertion about a host is read back from the host itself (``lxc-attach``), the
way an operator would look. The lab (`tests.fixtures.debian_lxc`) is made once for the
module; its template rootfs is built once per machine and cached.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.debian_lxc import BUILD_TIMEOUT, DebianHost, DebianLab, debian_lab
from tests.fixtures.up import RunningManagers
from tests.waiting import wait_until
from watchkeeper import __version__
from watchkeeper.runtime import Manager

#: The first test may build the template rootfs (cached after): debootstrap takes a minute.
pytestmark = pytest.mark.timeout(BUILD_TIMEOUT)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DebianLab]:
    with debian_lab(tmp_path_factory.mktemp("deb")) as made:
        yield made


@dataclass
class Site:
    """The manager under test, its document, and the hosts it deploys to."""

    manager: Manager
    lab: DebianLab
    source: Path
    data_dir: Path
    known_hosts: Path
    api: httpx.AsyncClient

    def write(self, doc: dict[str, Any]) -> None:
        self.source.write_text(json.dumps(doc))

    def check(self, key: str) -> tuple[str, str]:
        status = self.manager.runner.engine.statuses.get(key) if self.manager.runner else None
        if status is None or status.pending:
            return "PENDING", ""
        return status.state.name, status.output

    def last_check(self, key: str) -> float:
        status = self.manager.runner.engine.statuses.get(key) if self.manager.runner else None
        return (status.last_check if status else None) or 0.0

    def status(self, host: str, deployment: str = "base") -> Any:
        return self.manager.stages.deploy.statuses.get((deployment, host))

    def on_host(self, host: str, script: str) -> str:
        return self.lab.run(host, "sh", "-c", script)


def document(
    site_lab: DebianLab,
    hosts: list[DebianHost],
    known_hosts: Path,
    *,
    jobs_port: int,
    deployment: dict[str, Any] | None = None,
    extra_hosts: list[dict[str, Any]] = (),  # type: ignore[assignment]
) -> dict[str, Any]:
    fast = {"interval": "1s", "retry_interval": "1s", "max_attempts": 1}
    base = {
        "name": "base",
        "hosts": [h.name for h in hosts] + [h["name"] for h in extra_hosts],
        "ssh": {
            "key": f"file:{site_lab.client_key}",
            "known_hosts": f"file:{known_hosts}",
            "connect_timeout": "3s",
        },
        "agent": {"manager": f"{site_lab.gateway}:{jobs_port}", "concurrency": 2},
        "packages": [{"name": "iproute2"}],
        "files": [
            {
                "path": "/etc/motd",
                "template": "{{ host.name }} in {{ host.zone }}: {{ vars.motto }}\n",
            },
            {"path": "/etc/watchkeeper-test/app.conf", "content": "port=8080\n", "mode": "0600"},
        ],
        "commands": [{"run": "date > /var/lib/first-boot", "creates": "/var/lib/first-boot"}],
        "vars": {"motto": "deployed by watchkeeper"},
        "every": "2s",
        "max_concurrent": 5,
    }
    return {
        "schema": "watchkeeper/v1",
        "zones": [{"name": "dc1"}],
        "hosts": [
            *({"name": h.name, "address": h.address, "zone": "dc1"} for h in hosts),
            *extra_hosts,
        ],
        "services": [
            {"name": "agent-echo", "hosts": [h.name for h in hosts], **fast,
             "check": {"kind": "agent", "command": ["/bin/echo", "OK - the agent runs here"]}},
        ] if hosts else [],
        "deployments": [base | (deployment or {})],
    }  # fmt: skip


@pytest.fixture
async def start(tmp_path: Path, lab: DebianLab) -> AsyncIterator[Callable[..., Any]]:
    """The manager of ``up`` with its job server on the lab's bridge (the agents dial it),
    first on a document without deployments (to learn the job port)."""
    managers = RunningManagers()

    async def start_() -> Site:
        source = tmp_path / "doc.json"
        source.write_text(json.dumps({"schema": "watchkeeper/v1", "zones": [{"name": "dc1"}]}))
        manager, api = await managers.start(source, tmp_path / "data", jobs_host=lab.gateway)
        return Site(manager, lab, source, tmp_path / "data", tmp_path / "known_hosts", api)

    try:
        yield start_
    finally:
        await managers.stop_all()
        await asyncio.to_thread(lab.remove_all)


async def cli(*argv: str) -> subprocess.CompletedProcess[str]:
    """``watchkeeper ARGV`` as an admin types it, in a process of its own."""
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "watchkeeper", *argv], capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip


async def test_agent_deploy_approve_drift_and_host_key(start: Callable[..., Any]) -> None:
    site: Site = await start()
    lab = site.lab
    (legacy1,) = await asyncio.to_thread(lab.hosts, ["legacy1"])
    site.known_hosts.write_text(lab.known_hosts_line(legacy1) + "\n")
    doc = document(lab, [legacy1], site.known_hosts, jobs_port=site.manager.jobs_port)

    # The first check-mode run is the plan: it names the agent's version and the files.
    site.write(doc)
    await wait_until(
        lambda: (s := site.status("legacy1")) is not None and s.mode == "check",
        within=30, what="the first check-mode run of legacy1",
    )  # fmt: skip
    plan = site.status("legacy1").changes
    assert f"install agent {__version__}" in plan
    assert "change /etc/motd" in plan
    assert "run 'date > /var/lib/first-boot'" in plan

    # Then the apply: the agent installed, its key back, pending approval (the time it
    # takes is bench/bench_deploy.py's figure, not an assertion).
    await wait_until(
        lambda: "legacy1" in site.manager.stages.deploy.pending, within=60,
        what="legacy1's agent key pending approval",
    )  # fmt: skip
    assert site.on_host("legacy1", "cat /etc/motd") == "legacy1 in dc1: deployed by watchkeeper\n"
    assert site.on_host("legacy1", "stat -c %a /etc/watchkeeper-test/app.conf").strip() == "600"
    assert site.on_host("legacy1", "cat /opt/watchkeeper/VERSION").strip() == __version__
    await wait_until(
        lambda: site.check("deploy:legacy1")[1].startswith("agent installed; its key"),
        within=20, what="deploy:legacy1 names the pending key",
    )  # fmt: skip
    assert site.check("deploy:legacy1")[0] == "WARNING"
    # The document asked for an agent; it granted nothing: its checks wait.
    assert site.check("legacy1!agent-echo")[0] == "PENDING"

    # The admin approves; the agent (redialling every <= 10 s) joins and its check goes OK.
    approved = await cli("worker-key", "approve", "legacy1", "--data-dir", str(site.data_dir))
    assert approved.returncode == 0, approved.stderr
    assert "agent-legacy1" in approved.stdout
    await wait_until(
        lambda: site.check("legacy1!agent-echo") == ("OK", "OK - the agent runs here"),
        within=40, what="legacy1's agent check OK",
    )  # fmt: skip
    await wait_until(
        lambda: site.check("deploy:legacy1")[0] == "OK", within=20, what="deploy:legacy1 OK"
    )

    # A second deploy changes nothing.
    assert site.manager.stages.deploy.request("base", "legacy1", "apply") == ["legacy1"]
    asked = time.time()
    await wait_until(
        lambda: (s := site.status("legacy1")).mode == "apply" and s.at > asked,
        within=30, what="the second apply",
    )  # fmt: skip
    second = site.status("legacy1")
    assert second.ok and second.changes == ()

    # A file drifted by hand is found by the periodic check and put back.
    site.on_host("legacy1", "echo tampered > /etc/motd")
    await wait_until(
        lambda: site.on_host("legacy1", "cat /etc/motd").startswith("legacy1 in dc1"),
        within=30, what="/etc/motd repaired",
    )  # fmt: skip
    history = (await site.api.get("/checks/deploy:legacy1/history")).json()
    outputs = [entry.get("output", "") for entry in history.get("items", history)]
    assert any("would change /etc/motd" in text for text in outputs), outputs

    # An upgrade takes the same path: an agent of another version is replaced, and the
    # restarted agent (same key, still enrolled) runs its checks again.
    site.on_host("legacy1", "echo 0.0.1 > /opt/watchkeeper/VERSION")
    await wait_until(
        lambda: site.on_host("legacy1", "cat /opt/watchkeeper/VERSION || true").strip()
        == __version__,
        within=90, what="the agent upgraded",
    )  # fmt: skip
    history = (await site.api.get("/checks/deploy:legacy1/history")).json()
    outputs = [entry.get("output", "") for entry in history.get("items", history)]
    assert any(f"would install agent {__version__}, replacing 0.0.1" in t for t in outputs)
    upgraded = time.time()
    await wait_until(
        lambda: site.last_check("legacy1!agent-echo") > upgraded
        and site.check("legacy1!agent-echo") == ("OK", "OK - the agent runs here"),
        within=40, what="the upgraded agent running its check",
    )  # fmt: skip

    # Removal too: the agent stops, and its venv, settings and key leave the host.
    doc["deployments"][0]["agent"] = {"state": "absent"}
    site.write(doc)
    gone = "test -e /opt/watchkeeper || test -e /etc/watchkeeper/agent_key || echo gone"
    await wait_until(
        lambda: site.on_host("legacy1", gone) == "gone\n", within=60, what="the agent removed"
    )
    # ([w]: the pattern does not match the shell that runs pgrep)
    assert site.on_host("legacy1", "pgrep -f '[w]atchkeeper worker' || echo none") == "none\n"

    # A changed host key refuses the deploy, and the host is left as it was.
    await asyncio.to_thread(lab.regenerate_host_key, "legacy1")
    site.on_host("legacy1", "echo tampered-again > /etc/motd")
    await wait_until(
        lambda: (s := site.status("legacy1")).ok is False and s.error_kind == "host-key",
        within=30, what="the deploy refused for the changed host key",
    )  # fmt: skip
    await wait_until(
        lambda: site.check("deploy:legacy1")[0] == "CRITICAL", within=20,
        what="deploy:legacy1 CRITICAL",
    )  # fmt: skip
    assert site.on_host("legacy1", "cat /etc/motd") == "tampered-again\n"


async def test_max_failures_halts_a_rollout(start: Callable[..., Any]) -> None:
    site: Site = await start()
    lab = site.lab
    good = await asyncio.to_thread(lab.hosts, ["good1", "good2", "good3"])
    site.known_hosts.write_text("".join(lab.known_hosts_line(h) + "\n" for h in good))
    # Two hosts first in the order whose addresses nothing answers on the bridge.
    unreachable = [
        {"name": f"gone{i}", "address": lab.address(200 + i), "zone": "dc1"} for i in (1, 2)
    ]
    doc = document(
        lab, [], site.known_hosts, jobs_port=site.manager.jobs_port, extra_hosts=unreachable,
        deployment={"hosts": ["gone1", "gone2", *(h.name for h in good)], "agent": None,
                    "max_concurrent": 1, "max_failures": 1, "every": "1h"},
    )  # fmt: skip
    doc["hosts"] += [{"name": h.name, "address": h.address, "zone": "dc1"} for h in good]
    site.write(doc)
    deploy = site.manager.stages.deploy
    await wait_until(lambda: "base" in deploy.halts, within=60, what="the rollout halted")
    assert "2 hosts failed (gone1, gone2), more than max_failures 1" in deploy.halts["base"]
    for name in ("gone1", "gone2"):
        assert deploy.statuses[("base", name)].error_kind == "unreachable"
    # Halted: the good hosts are still checked (a plan harms nothing) but never applied.
    await wait_until(
        lambda: all((s := site.status(h.name)) is not None and s.mode == "check" for h in good),
        within=60, what="every good host checked",
    )  # fmt: skip
    for host in good:
        assert site.on_host(host.name, "test -e /etc/watchkeeper-test/app.conf || echo absent") == (
            "absent\n"
        )
    await wait_until(
        lambda: "rollout halted" in site.check("deploy:good1")[1], within=20,
        what="deploy:good1 says the rollout halted",
    )  # fmt: skip
