"""A worker cut off the network without a word (no FIN, no RST): its manager notices.

A network namespace ``wk-cut-<pid>`` joined to this one by a veth pair on a free
10.214.x.y/30; the job server listens on the host side's address. One worker of zone
``a`` runs inside the namespace and takes a job that never ends; a second worker of the
zone runs here. Then the namespace's end of the link goes down: packets are dropped, both
TCP connections stay open, nothing is said. The manager's monitor must give the cut worker
up after `MISSED_HEARTBEATS` silent ticks and re-lease its job to the peer.

Needs root and ip(8) (``scripts/bootstrap --test``); without them the test skips, saying
what is missing, except under ``CI=true``, where it fails. Teardown kills the worker by
pid and deletes the link and the namespace by name, passed or not.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import pytest

from tests.fixtures.jobserver import eventually, make_job, ok_job
from tests.fixtures.prerequisites import unavailable
from watchkeeper.transport import keys
from watchkeeper.transport.client import WorkerConnection, WorkerSettings
from watchkeeper.transport.protocol import MISSED_HEARTBEATS, Job, Result
from watchkeeper.transport.registry import MemoryKeyRegistry
from watchkeeper.transport.sensors import InFlightSensor
from watchkeeper.transport.server import JobServer

HEARTBEAT = 0.3
#: Blocks of four addresses in 10.214.0.0/16; a run starts looking at its pid's block.
BLOCKS = 2**16 // 4
SRC = Path(__file__).parents[2] / "src"


def run(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if done.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def _quietly(*argv: str) -> None:
    with contextlib.suppress(RuntimeError):
        run(*argv)


def free_block(pid: int) -> tuple[str, str]:
    """Host and namespace addresses of a /30 no interface here uses, starting from ``pid``."""
    used = [
        ipaddress.ip_interface(word)
        for line in run("ip", "-o", "-4", "addr", "show").splitlines()
        for word in line.split()[3:4]
    ]
    for step in range(BLOCKS):
        first = ipaddress.IPv4Address("10.214.0.0") + (pid + step) % BLOCKS * 4
        subnet = ipaddress.ip_network(f"{first}/30")
        if not any(interface.ip in subnet for interface in used):
            return str(first + 1), str(first + 2)
    raise RuntimeError("no free /30 in 10.214.0.0/16")


@dataclass(frozen=True)
class Namespace:
    name: str
    #: The namespace's end of the veth pair.
    device: str
    #: This side's address, where the job server listens.
    host_address: str

    def exec(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]


@pytest.fixture
def namespace() -> Iterator[Namespace]:
    """A namespace joined to this one by a veth pair; see the module docstring."""
    missing = [] if os.geteuid() == 0 else ["root (network namespaces)"]
    missing += [] if shutil.which("ip") else ["ip (iproute2: scripts/bootstrap --test)"]
    if missing:
        unavailable(f"the network cut test needs {', '.join(missing)}")
    pid = os.getpid()
    name, host_side, ns_side = f"wk-cut-{pid}", f"wkc{pid}a", f"wkc{pid}b"
    with contextlib.ExitStack() as cleanup:
        run("ip", "netns", "add", name)
        cleanup.callback(run, "ip", "netns", "del", name)
        run("ip", "link", "add", host_side, "type", "veth", "peer", "name", ns_side)
        cleanup.callback(_quietly, "ip", "link", "del", host_side)  # takes the peer along
        host_address, address = free_block(pid)
        run("ip", "link", "set", ns_side, "netns", name)
        run("ip", "addr", "add", f"{host_address}/30", "dev", host_side)
        run("ip", "link", "set", host_side, "up")
        inside = ("ip", "netns", "exec", name)
        run(*inside, "ip", "addr", "add", f"{address}/30", "dev", ns_side)
        run(*inside, "ip", "link", "set", ns_side, "up")
        run(*inside, "ip", "link", "set", "lo", "up")
        yield Namespace(name, ns_side, host_address)


@dataclass
class Manager:
    server: JobServer
    registry: MemoryKeyRegistry
    results: list[tuple[str, Result]]
    tmp_path: Path

    def enrol(self, name: str) -> Path:
        key = asyncssh.generate_private_key("ssh-ed25519")
        path = self.tmp_path / f"{name}.key"
        path.write_bytes(key.export_private_key())
        path.chmod(0o600)
        self.registry.add(name, keys.canonical_public_key(key), ["a"])
        return path


@pytest.fixture
async def manager(namespace: Namespace, tmp_path: Path) -> AsyncIterator[Manager]:
    """A job server on the host side's address, heartbeat `HEARTBEAT`."""
    registry = MemoryKeyRegistry()
    results: list[tuple[str, Result]] = []
    server = JobServer(
        registry=registry,
        host_key=asyncssh.generate_private_key("ssh-ed25519"),
        on_result=lambda name, result: results.append((name, result)),
        host=namespace.host_address,
        port=0,
        heartbeat_interval=HEARTBEAT,
    )
    await server.start()
    try:
        yield Manager(server, registry, results, tmp_path)
    finally:
        await server.aclose()


WORKER_SCRIPT = """
import asyncio, sys
from pathlib import Path
from watchkeeper.transport.client import WorkerConnection, WorkerSettings

async def run_job(job):
    print("started", job.job_id, flush=True)
    await asyncio.Event().wait()

settings = WorkerSettings(host=sys.argv[1], port=int(sys.argv[2]), key_path=Path(sys.argv[3]),
                          manager_fingerprint=sys.argv[4], name="cut")
asyncio.run(WorkerConnection(settings, run_job, sensor_list=[]).run())
"""


async def test_a_silently_cut_worker_has_its_job_re_leased_within_three_heartbeats(
    namespace: Namespace, manager: Manager, caplog: pytest.LogCaptureFixture
) -> None:
    """Silence is counted in the monitor's ticks (one per heartbeat interval, see
    `JobServer._tick`): the cut worker is dropped at the first tick after it missed
    `MISSED_HEARTBEATS` of them, so at most one interval more than those after its last
    heartbeat; its job goes to the peer at once."""
    caplog.set_level(logging.INFO, "watchkeeper.transport.server")
    server = manager.server
    fingerprint = keys.fingerprint(server._host_key)
    key = manager.enrol("cut")
    proc = await asyncio.create_subprocess_exec(
        *namespace.exec(sys.executable, "-c", WORKER_SCRIPT),
        namespace.host_address,
        str(server.port),
        str(key),
        fingerprint,
        stdout=asyncio.subprocess.PIPE,
        env=os.environ | {"PYTHONPATH": str(SRC)},
    )
    peer: WorkerConnection | None = None
    peer_task: asyncio.Task[None] | None = None
    try:
        await eventually(lambda: server.zone_online("a"), within=20, what="the cut worker")
        job: Job = make_job("a")
        assert await server.submit(job)
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 10)
        assert line.split() == [b"started", job.job_id.encode()]

        settings = WorkerSettings(
            host=namespace.host_address,
            port=server.port,
            key_path=manager.enrol("peer"),
            manager_fingerprint=fingerprint,
            name="peer",
        )
        peer = WorkerConnection(settings, ok_job("peer"), sensor_list=[InFlightSensor()])
        peer_task = asyncio.create_task(peer.run())
        await asyncio.wait_for(peer.connected.wait(), 10)
        await eventually(lambda: {w.name for w in server.workers()} == {"cut", "peer"})
        assert manager.results == []  # the job is still the cut worker's

        run(*namespace.exec("ip", "link", "set", namespace.device, "down"))
        cut_at = time.monotonic()
        bound = (MISSED_HEARTBEATS + 1) * HEARTBEAT + 1.0
        await eventually(lambda: len(manager.results) == 1, within=bound + 10)
        took = time.monotonic() - cut_at
        name, result = manager.results[0]
        assert (name, result.job_id) == ("peer", job.job_id)
        assert took <= bound, f"re-leased {took:.2f} s after the cut (bound {bound:.2f} s)"
        assert [w.name for w in server.workers()] == ["peer"]
        # Dropped for its silence, not for a closed connection: the cut said nothing.
        lost = [r.getMessage() for r in caplog.records if "disconnected" in r.getMessage()]
        assert lost == [f"worker cut disconnected: missed {MISSED_HEARTBEATS} heartbeats"]
        assert proc.returncode is None  # the cut worker never said a word: it is still up
    finally:
        if peer is not None and peer_task is not None:
            peer.stop()
            await asyncio.wait_for(asyncio.gather(peer_task, return_exceptions=True), 10)
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
