"""A worker that knows several managers (issue 15): the next at once, backoff per round.

Real job servers on loopback: the harness's (``h``), a second one in this process sharing
its key registry (two managers, one database), and one in a subprocess frozen with SIGSTOP
(its kernel still ACKs, so only silence tells) to prove a silent manager is left within
`MISSED_HEARTBEATS` heartbeat intervals.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from tests.fixtures.jobserver import Harness, eventually, make_job, ok_job
from watchkeeper.transport import keys
from watchkeeper.transport.client import WorkerConnection
from watchkeeper.transport.errors import HostKeyMismatch, TransportError
from watchkeeper.transport.protocol import MISSED_HEARTBEATS
from watchkeeper.transport.server import JobServer

#: The frozen manager's heartbeat interval: what its welcome tells the worker.
FROZEN_HEARTBEAT = 0.3
#: Past the silence itself: a dial and an SSH handshake to the next manager, loaded CI.
HANDOVER = 1.0

SRC = Path(__file__).parents[2] / "src"


@pytest.fixture
def refused() -> Iterator[int]:
    """A loopback port bound but not listening: every dial is refused, for the whole test."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
async def peer(h: Harness) -> AsyncIterator[JobServer]:
    """A second manager of the cluster: its own host key, the harness's key registry."""
    server = JobServer(
        registry=h.registry,
        host_key=asyncssh.generate_private_key("ssh-ed25519"),
        on_result=lambda name, result: h.results.append((name, result)),
        host="127.0.0.1",
        port=0,
        heartbeat_interval=h.server.heartbeat_interval,
    )
    await server.start()
    try:
        yield server
    finally:
        await server.aclose()


def start(h: Harness, worker: WorkerConnection) -> WorkerConnection:
    h.workers.append((worker, asyncio.create_task(worker.run())))
    return worker


def where(port: int) -> str:
    return f"127.0.0.1:{port}"


class DownSpy:
    """Records the worker's (failed manager, delay, manager dialled next) decisions."""

    def __init__(self, worker: WorkerConnection) -> None:
        self.calls: list[tuple[str, float, str | None]] = []
        real = worker._link.down

        def down(error: TransportError | None, delay: float, *, then: str | None = None) -> None:
            self.calls.append((error.message if error else "", delay, then))
            real(error, delay, then=then)

        worker._link.down = down  # type: ignore[method-assign]


async def test_a_refused_manager_hands_over_to_the_next_at_once(
    h: Harness, refused: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "watchkeeper.transport.client")
    key = h.enrol("w", ["a"])
    settings = h.settings(
        "w",
        key,
        port=refused,
        more_managers=(("127.0.0.1", h.server.port),),
        backoff_base=30.0,  # a backoff between the two would blow the wait below
        backoff_cap=60.0,
    )
    worker = start(h, WorkerConnection(settings, ok_job("w"), sensor_list=[]))
    await asyncio.wait_for(worker.connected.wait(), 5)
    assert worker.manager == where(h.server.port) and worker.failures == 0
    said = [r.getMessage() for r in caplog.records]
    assert any(
        f"cannot reach the manager at {where(refused)}" in line
        and line.endswith(f"trying the manager at {where(h.server.port)} now")
        for line in said
    ), said
    assert await h.server.submit(make_job("a"))
    await eventually(lambda: len(h.results) == 1)


async def test_the_backoff_waits_only_once_every_manager_failed(h: Harness, refused: int) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        second = other.getsockname()[1]
        key = h.enrol("w", ["a"])
        settings = h.settings(
            "w",
            key,
            port=refused,
            more_managers=(("127.0.0.1", second),),
            backoff_base=30.0,
            backoff_cap=60.0,
        )
        worker = WorkerConnection(settings, ok_job("w"), sensor_list=[])
        spy = DownSpy(worker)
        start(h, worker)
        await eventually(lambda: len(spy.calls) == 2)
        (first_error, first_delay, first_then), (second_error, delay, then) = spy.calls
        assert where(refused) in first_error and (first_delay, first_then) == (0.0, where(second))
        assert where(second) in second_error and then is None
        assert 15.0 <= delay <= 30.0  # the first round's backoff: base 30 s, equal jitter
        assert worker.failures == 2


async def test_a_manager_that_closes_hands_its_worker_to_the_next_at_once(
    h: Harness, peer: JobServer
) -> None:
    key = h.enrol("w", ["a"])
    settings = h.settings(
        "w",
        key,
        port=peer.port,
        more_managers=(("127.0.0.1", h.server.port),),
        manager_fingerprint=keys.fingerprint(peer._host_key),
        more_fingerprints=(h.fingerprint,),
        backoff_base=30.0,
        backoff_cap=60.0,
    )
    worker = start(h, WorkerConnection(settings, ok_job("w"), sensor_list=[]))
    await asyncio.wait_for(worker.connected.wait(), 5)
    assert worker.manager == where(peer.port)
    await peer.aclose()  # the leader steps down: it closes its sessions and stops listening
    await eventually(lambda: worker.manager == where(h.server.port), within=5)
    await eventually(lambda: [w.name for w in h.server.workers()] == ["w"])
    assert await h.server.submit(make_job("a"))
    await eventually(lambda: len(h.results) == 1)


async def test_a_wrong_host_key_on_any_manager_of_the_list_is_fatal(
    h: Harness, peer: JobServer
) -> None:
    key = h.enrol("w", ["a"])
    settings = h.settings(
        "w", key, port=peer.port, more_managers=(("127.0.0.1", h.server.port),)
    )  # pins h's key only: the peer presents another
    worker = WorkerConnection(settings, ok_job("w"), sensor_list=[])
    with pytest.raises(HostKeyMismatch) as caught:
        await asyncio.wait_for(worker.run(), 5)
    assert keys.fingerprint(peer._host_key) in caught.value.message
    assert h.server.workers() == []


MANAGER_SCRIPT = """
import asyncio, sys
import asyncssh
from watchkeeper.transport.registry import MemoryKeyRegistry
from watchkeeper.transport.server import JobServer

async def main():
    registry = MemoryKeyRegistry()
    registry.add(sys.argv[2], sys.argv[3], ["a"])
    server = JobServer(registry=registry, host_key=asyncssh.read_private_key(sys.argv[1]),
                       on_result=lambda name, result: None, host="127.0.0.1", port=0,
                       heartbeat_interval=float(sys.argv[4]))
    await server.start()
    print(server.port, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


@pytest.fixture
async def frozen_manager(tmp_path: Path) -> AsyncIterator[tuple[Any, int, str, Path]]:
    """A job server in a subprocess: (process, port, its fingerprint, worker key file)."""
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    host_key_file = tmp_path / "frozen_host_key"
    host_key_file.write_bytes(host_key.export_private_key())
    worker_key = asyncssh.generate_private_key("ssh-ed25519")
    key_file = tmp_path / "w.key"
    key_file.write_bytes(worker_key.export_private_key())
    key_file.chmod(0o600)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        MANAGER_SCRIPT,
        str(host_key_file),
        "w",
        keys.canonical_public_key(worker_key),
        str(FROZEN_HEARTBEAT),
        stdout=asyncio.subprocess.PIPE,
        env=os.environ | {"PYTHONPATH": str(SRC)},
    )
    try:
        assert proc.stdout is not None
        port = int(await asyncio.wait_for(proc.stdout.readline(), 20))
        yield proc, port, keys.fingerprint(host_key), key_file
    finally:
        proc.kill()  # SIGKILL ends a stopped process too
        await proc.wait()


async def test_a_frozen_manager_is_left_within_three_heartbeats(
    h: Harness,
    frozen_manager: tuple[Any, int, str, Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """SIGSTOP: the manager's TCP connections stay open, the kernel ACKs, nothing answers.
    The worker must give it up after `MISSED_HEARTBEATS` of its heartbeat intervals (its
    welcome's 0.3 s) and take the next manager, not wait for TCP to time out."""
    caplog.set_level(logging.WARNING, "watchkeeper.transport.client")
    proc, port, fingerprint, key = frozen_manager
    h.registry.add("w", keys.canonical_public_key(asyncssh.read_private_key(key)), ["a"])
    settings = h.settings(
        "w",
        key,
        port=port,
        more_managers=(("127.0.0.1", h.server.port),),
        manager_fingerprint=fingerprint,
        more_fingerprints=(h.fingerprint,),
        backoff_base=30.0,  # a backoff would blow the bound below
        backoff_cap=60.0,
    )
    worker = start(h, WorkerConnection(settings, ok_job("w"), sensor_list=[]))
    await asyncio.wait_for(worker.connected.wait(), 10)
    assert worker.manager == where(port)
    assert worker.welcome is not None and worker.welcome.heartbeat_interval == FROZEN_HEARTBEAT

    os.kill(proc.pid, signal.SIGSTOP)
    frozen_at = time.monotonic()
    bound = MISSED_HEARTBEATS * FROZEN_HEARTBEAT + HANDOVER
    await eventually(
        lambda: worker.connected.is_set() and worker.manager == where(h.server.port),
        within=bound + 5,
        what="the worker on the second manager",
    )
    took = time.monotonic() - frozen_at
    assert took <= bound, f"took {took:.2f} s to leave the frozen manager (bound {bound:.2f} s)"
    said = [r.getMessage() for r in caplog.records]
    assert any(
        line.startswith(f"lost the manager connection at {where(port)}")
        and line.endswith(f"trying the manager at {where(h.server.port)} now")
        for line in said
    ), said
    assert await h.server.submit(make_job("a"))
    await eventually(lambda: len(h.results) == 1)
