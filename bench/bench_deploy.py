"""Deployments: agent deploy time for 1 and N hosts at once, no-op re-run, drift latency.

    sudo .venv/bin/python bench/bench_deploy.py [--hosts 10] [--drift-rounds 5] [--drift-only]

Real unmanaged hosts: LXC Debian clones with sshd (`tests.fixtures.debian_lxc`, root).

* deploy 1 / N: the deploy worker's side (`DeployRunner`, one pyinfra process per host),
  check mode then apply of the agent plus a small host state, timed from the check's
  start to the apply's end, on fresh hosts;
* no-op: the same apply again on a converged host (median of 5);
* drift latency: the manager of ``up`` deploying with ``every: 5s``; a file is changed by
  hand, and the time until a check-mode run reports it, and until it is repaired on the
  host, is measured per round.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.debian_lxc import DebianHost, DebianLab, debian_lab
from tests.fixtures.up import RunningManagers

from watchkeeper import __version__
from watchkeeper.jobs.payloads import DeployPayload
from watchkeeper.worker.deploy import DeployRunner


def deployment(lab: DebianLab, known_hosts: Path, manager: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": "bench",
        "hosts": [],
        "ssh": {"key": f"file:{lab.client_key}", "known_hosts": f"file:{known_hosts}"},
        "agent": {"manager": manager},
        "packages": [{"name": "iproute2"}],
        "files": [
            {"path": "/etc/motd", "template": "{{ host.name }}: managed\n"},
            {"path": "/etc/bench/app.conf", "content": "port=8080\n", "mode": "0600"},
        ],
        "commands": [{"run": "date > /var/lib/first-boot", "creates": "/var/lib/first-boot"}],
        **extra,
    }


async def deploy(
    runner: DeployRunner, spec: dict[str, Any], host: DebianHost, mode: str
) -> tuple[float, str]:
    began = time.monotonic()
    outcome = await runner.run(
        DeployPayload(
            mode=mode,
            deployment=spec,
            host=host.name,
            address=host.address,
            zone="dc1",
            agent_version=__version__,
            manager_fingerprint="SHA256:bench",
        )
    )
    if outcome.state.name != "OK":
        raise SystemExit(f"{host.name}: {outcome.output}")
    return time.monotonic() - began, outcome.output


async def converge(runner: DeployRunner, spec: dict[str, Any], host: DebianHost) -> float:
    began = time.monotonic()
    await deploy(runner, spec, host, "check")
    await deploy(runner, spec, host, "apply")
    return time.monotonic() - began


async def worker_side(lab: DebianLab, work: Path, count: int) -> dict[str, Any]:
    hosts = lab.hosts([f"b{i}" for i in range(count + 1)])
    known_hosts = work / "known_hosts"
    known_hosts.write_text("".join(lab.known_hosts_line(h) + "\n" for h in hosts))
    spec = deployment(lab, known_hosts, f"{lab.gateway}:4730")
    runner = DeployRunner(state_dir=work / "worker")
    one = await converge(runner, spec, hosts[0])
    noop = sorted([(await deploy(runner, spec, hosts[0], "apply"))[0] for _ in range(5)])
    began = time.monotonic()
    each = await asyncio.gather(*(converge(runner, spec, h) for h in hosts[1:]))
    many = time.monotonic() - began
    return {
        "deploy_1_host_s": round(one, 2),
        f"deploy_{count}_hosts_at_once_s": round(many, 2),
        f"deploy_{count}_hosts_slowest_host_s": round(max(each), 2),
        "noop_rerun_median_s": round(statistics.median(noop), 2),
        "noop_rerun_max_s": round(noop[-1], 2),
    }


async def drift_latency(lab: DebianLab, work: Path, rounds: int) -> dict[str, Any]:
    (host,) = lab.hosts(["drift"])
    known_hosts = work / "known_hosts_drift"
    known_hosts.write_text(lab.known_hosts_line(host) + "\n")
    source = work / "doc.json"
    source.write_text(json.dumps({"schema": "watchkeeper/v1", "zones": [{"name": "dc1"}]}))
    managers = RunningManagers()
    manager, _ = await managers.start(source, work / "data", jobs_host=lab.gateway)
    try:
        spec = deployment(lab, known_hosts, f"{lab.gateway}:{manager.jobs_port}",
                          agent=None, every="5s", hosts=["drift"])  # fmt: skip
        doc = {"schema": "watchkeeper/v1", "zones": [{"name": "dc1"}],
               "hosts": [{"name": "drift", "address": host.address, "zone": "dc1"}],
               "deployments": [spec]}  # fmt: skip
        source.write_text(json.dumps(doc))
        want = "drift: managed\n"
        await until(lambda: lab.run("drift", "cat", "/etc/motd") == want, 120)
        deploy = manager.stages.deploy
        found, repaired = [], []
        for _ in range(rounds):
            lab.run("drift", "sh", "-c", "echo tampered > /etc/motd")
            began, since = time.monotonic(), time.time()

            await until(functools.partial(reported, deploy, since), 60)
            found.append(time.monotonic() - began)
            await until(lambda: lab.run("drift", "cat", "/etc/motd") == want, 60)
            repaired.append(time.monotonic() - began)
        return {
            "drift_every_s": 5,
            "drift_found_median_s": round(statistics.median(found), 2),
            "drift_found_max_s": round(max(found), 2),
            "drift_repaired_median_s": round(statistics.median(repaired), 2),
            "drift_repaired_max_s": round(max(repaired), 2),
        }
    finally:
        await managers.stop_all()


def reported(deploy: Any, since: float) -> bool:
    """A check-mode run that ended after ``since`` found changes on the drift host."""
    status = deploy.statuses[("bench", "drift")]
    return bool(status.mode == "check" and status.at > since and status.changes)


async def until(condition: Any, within: float) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("not reached in time")
        await asyncio.sleep(0.05)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--drift-rounds", type=int, default=5)
    parser.add_argument("--drift-only", action="store_true", help="only the drift latency")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "lab").mkdir()
        with debian_lab(work / "lab") as lab:
            figures = {} if args.drift_only else await worker_side(lab, work, args.hosts)
            figures |= await drift_latency(lab, work, args.drift_rounds)
    for name, value in figures.items():
        print(f"{name:40} {value}")


if __name__ == "__main__":
    asyncio.run(main())
