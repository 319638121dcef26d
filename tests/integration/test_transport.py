"""The SSH job transport on loopback: auth, refusals, routing by enrolled zone, failover."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from tests.fixtures.jobserver import (
    CHECK_DUMMY,
    HAVE_CHECK_DUMMY,
    HEARTBEAT,
    Harness,
    eventually,
    make_job,
    ok_job,
)
from watchkeeper.results import CheckOutcome, CheckState
from watchkeeper.transport import keys, protocol
from watchkeeper.transport.client import WorkerConnection
from watchkeeper.transport.errors import HostKeyMismatch
from watchkeeper.transport.protocol import Job, Result


async def raw_connect(h: Harness, key: Path | None, **kw: Any) -> asyncssh.SSHClientConnection:
    options: dict[str, Any] = {
        "known_hosts": None,
        "username": "probe",
        "agent_path": None,
        "config": None,
        "client_keys": [key] if key else None,
    }
    return await asyncssh.connect("127.0.0.1", h.server.port, **(options | kw))


async def raw_session(
    conn: asyncssh.SSHClientConnection,
) -> tuple[asyncssh.SSHWriter[bytes], asyncssh.SSHReader[bytes]]:
    writer, reader, _ = await conn.open_session(subsystem=protocol.SUBSYSTEM, encoding=None)
    return writer, reader


async def read_message(reader: asyncssh.SSHReader[bytes]) -> protocol.Message:
    header = await asyncio.wait_for(reader.readexactly(4), 5)
    return protocol.decode_payload(await reader.readexactly(int.from_bytes(header, "big")))


async def raw_worker(
    h: Harness, name: str, zones: list[str]
) -> tuple[asyncssh.SSHClientConnection, asyncssh.SSHWriter[bytes], asyncssh.SSHReader[bytes]]:
    conn = await raw_connect(h, h.enrol(name, zones))
    writer, reader = await raw_session(conn)
    writer.write(protocol.encode(protocol.Hello(name=name, version="test", concurrency=4)))
    assert isinstance(await read_message(reader), protocol.Welcome)
    return conn, writer, reader


# --- routing by enrolled zone -------------------------------------------------------------


async def test_jobs_reach_only_their_zone_and_spread_across_its_workers(h: Harness) -> None:
    for name, zone in (("a1", "a"), ("a2", "a"), ("b1", "b"), ("b2", "b")):
        await h.start_worker(name, [zone], concurrency=16)
    jobs = [make_job("a") for _ in range(20)] + [make_job("b") for _ in range(20)]
    for job in jobs:
        assert await h.server.submit(job)
    await eventually(lambda: len(h.results) == 40)
    ran = h.ran_on()
    for job in jobs:
        assert ran[job.job_id].startswith(job.zone)
    assert set(ran.values()) == {"a1", "a2", "b1", "b2"}
    assert {w.name: w.zones for w in h.server.workers()}["a1"] == ("a",)
    assert await h.server.submit(make_job("c")) is False


async def test_a_key_enrolled_for_a_never_gets_b_jobs_whatever_its_hello_claims(
    h: Harness,
) -> None:
    liar = await h.start_worker("liar", ["a"], zones=("a", "b"))
    assert liar.welcome is not None and liar.welcome.zones == ["a"]
    assert not h.server.zone_online("b")
    assert await h.server.submit(make_job("b")) is False
    await h.start_worker("b1", ["b"])
    for _ in range(5):
        assert await h.server.submit(make_job("b"))
    await eventually(lambda: len(h.results) == 5)
    assert set(h.ran_on().values()) == {"b1"}
    info = {w.name: w for w in h.server.workers()}["liar"]
    assert info.zones == ("a",) and info.claimed_zones == ("a", "b")


async def test_label_requirements_use_enrolled_labels(h: Harness) -> None:
    await h.start_worker("plain", ["a"], labels={"role": "db"})
    await h.start_worker("web", ["a"], labels={"role": "web"})
    for _ in range(4):
        assert await h.server.submit(make_job("a", requires={"role": "web"}))
    await eventually(lambda: len(h.results) == 4)
    assert set(h.ran_on().values()) == {"web"}


# --- authentication and refusals ----------------------------------------------------------


async def test_an_unknown_key_is_refused(h: Harness) -> None:
    stranger = h.tmp_path / "stranger.key"
    stranger.write_bytes(asyncssh.generate_private_key("ssh-ed25519").export_private_key())
    with pytest.raises(asyncssh.PermissionDenied):
        await raw_connect(h, stranger)


async def test_password_and_keyboard_interactive_are_refused(h: Harness) -> None:
    with pytest.raises(asyncssh.PermissionDenied):
        await raw_connect(h, None, password="hunter2", preferred_auth="password")
    with pytest.raises(asyncssh.PermissionDenied):
        await raw_connect(h, None, password="hunter2", preferred_auth="keyboard-interactive")


async def test_only_the_job_subsystem_is_served(h: Harness) -> None:
    key = h.enrol("probe", ["a"])
    async with await raw_connect(h, key) as conn:
        with pytest.raises(asyncssh.ChannelOpenError):
            await conn.run("id", check=True)
        with pytest.raises(asyncssh.ChannelOpenError):
            await conn.create_process()  # a shell
        with pytest.raises(asyncssh.ChannelOpenError):
            await conn.open_session(subsystem="sftp")
        with pytest.raises((asyncssh.ChannelOpenError, asyncssh.SFTPError)):
            await conn.start_sftp_client()
        with pytest.raises(asyncssh.ChannelOpenError):
            await conn.open_connection("127.0.0.1", h.server.port)  # direct-tcpip
        with pytest.raises(asyncssh.ChannelListenError):
            await conn.forward_remote_port("127.0.0.1", 0, "127.0.0.1", 22)
        with pytest.raises(asyncssh.ChannelOpenError):
            await conn.create_process(term_type="xterm", subsystem=protocol.SUBSYSTEM)
        writer, reader = await raw_session(conn)  # and the job subsystem still opens
        writer.write(protocol.encode(protocol.Hello(name="probe", version="t")))
        assert isinstance(await read_message(reader), protocol.Welcome)


async def test_a_wrong_manager_fingerprint_refuses_to_connect(h: Harness) -> None:
    key = h.enrol("w", ["a"])
    wrong = keys.fingerprint(asyncssh.generate_private_key("ssh-ed25519"))
    worker = WorkerConnection(h.settings("w", key, manager_fingerprint=wrong), ok_job("w"))
    with pytest.raises(HostKeyMismatch) as caught:
        await asyncio.wait_for(worker.run(), 5)
    assert wrong in caught.value.message and h.fingerprint in caught.value.message
    assert h.server.workers() == []


async def test_a_refused_key_is_logged_once_an_hour_not_at_every_redial(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "watchkeeper.transport.sshd")
    stranger = h.tmp_path / "stranger.key"
    stranger.write_bytes(asyncssh.generate_private_key("ssh-ed25519").export_private_key())
    now = [time.time()]
    h.server._clock = lambda: now[0]
    for _ in range(3):  # a revoked worker redials with backoff, for ever
        with pytest.raises(asyncssh.PermissionDenied):
            await raw_connect(h, stranger)
    told = [
        r.getMessage() for r in caplog.records if "refused unknown or revoked" in r.getMessage()
    ]
    assert len(told) == 1 and "worker-key add" in told[0]
    now[0] += 3601
    with pytest.raises(asyncssh.PermissionDenied):
        await raw_connect(h, stranger)
    told = [
        r.getMessage() for r in caplog.records if "refused unknown or revoked" in r.getMessage()
    ]
    assert len(told) == 2


async def test_revoking_closes_the_connection_now(h: Harness) -> None:
    worker = await h.start_worker("w", ["a"])
    h.registry.revoke("w")
    assert h.server.revoke("w") == 1
    await eventually(lambda: not worker.connected.is_set() and h.server.workers() == [])
    await eventually(lambda: worker.failures >= 1)  # it retries, and is refused
    assert h.server.workers() == []


async def test_a_revocation_elsewhere_is_noticed_within_an_interval(h: Harness) -> None:
    worker = await h.start_worker("w", ["a"])
    h.registry.revoke("w")  # as ``watchkeeper worker-key revoke`` in another process
    await eventually(lambda: not worker.connected.is_set(), within=3 * HEARTBEAT + 1)


# --- leases and failover ------------------------------------------------------------------


def blocking_job(started: asyncio.Event) -> Callable[[Job], Awaitable[CheckOutcome]]:
    async def run(job: Job) -> CheckOutcome:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    return run


async def test_a_worker_lost_mid_job_has_its_job_completed_by_its_peer(h: Harness) -> None:
    started = asyncio.Event()
    doomed = await h.start_worker("doomed", ["a"], blocking_job(started))
    job = make_job("a")
    assert await h.server.submit(job)
    await asyncio.wait_for(started.wait(), 5)
    await h.start_worker("peer", ["a"])
    assert doomed._session is not None
    doomed._session.abort()  # the TCP connection dies, no goodbye
    await eventually(lambda: len(h.results) == 1)
    assert h.results[0][0] == "peer" and h.results[0][1].job_id == job.job_id


async def test_a_once_job_of_a_lost_worker_is_reported_lost_not_run_again(h: Harness) -> None:
    started = asyncio.Event()
    doomed = await h.start_worker("doomed", ["a"], blocking_job(started))
    job = make_job("a", once=True)
    assert await h.server.submit(job)
    await asyncio.wait_for(started.wait(), 5)
    await h.start_worker("peer", ["a"])  # free to take it: it must not
    assert doomed._session is not None
    doomed._session.abort()
    await eventually(lambda: len(h.lost) == 1)
    assert h.lost[0][0].job_id == job.job_id
    assert h.lost[0][1].startswith("worker doomed was lost while running it")
    assert h.results == []


WORKER_SCRIPT = """
import asyncio, sys
from pathlib import Path
from watchkeeper.transport.client import WorkerConnection, WorkerSettings

async def run_job(job):
    print("started", job.job_id, flush=True)
    await asyncio.sleep(3600)

settings = WorkerSettings(host="127.0.0.1", port=int(sys.argv[1]), key_path=Path(sys.argv[2]),
                          manager_fingerprint=sys.argv[3], name="victim")
asyncio.run(WorkerConnection(settings, run_job, sensor_list=[]).run())
"""


async def test_kill_9_of_a_worker_process_mid_job_and_its_peer_completes_it(h: Harness) -> None:
    key = h.enrol("victim", ["a"])
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WORKER_SCRIPT,
        str(h.server.port),
        str(key),
        h.fingerprint,
        stdout=asyncio.subprocess.PIPE,
        env=os.environ | {"PYTHONPATH": str(Path(__file__).parents[2] / "src")},
    )
    try:
        await eventually(lambda: h.server.zone_online("a"), within=20)
        job = make_job("a")
        assert await h.server.submit(job)
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 10)
        assert line.split() == [b"started", job.job_id.encode()]
        await h.start_worker("survivor", ["a"])
        proc.kill()
        await proc.wait()
        await eventually(lambda: len(h.results) == 1)
        assert h.results[0][0] == "survivor" and h.results[0][1].job_id == job.job_id
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_duplicate_late_and_foreign_results_are_ignored(h: Harness) -> None:
    conn_a, writer_a, reader_a = await raw_worker(h, "ra", ["a"])
    conn_b, writer_b, _ = await raw_worker(h, "rb", ["b"])
    async with conn_a, conn_b:
        job = make_job("a")
        assert await h.server.submit(job)
        got = await read_message(reader_a)
        assert got == job
        ok = CheckOutcome(state=CheckState.OK, output="OK")
        result = Result.from_outcome(job, ok, started=1, finished=2)
        forged = result.model_copy(update={"output": "forged"})
        writer_b.write(protocol.encode(forged))  # not leased to rb
        writer_a.write(protocol.encode(result.model_copy(update={"token": 999})))  # wrong token
        writer_a.write(protocol.encode(result))
        writer_a.write(protocol.encode(result))  # duplicate
        await eventually(lambda: len(h.results) == 1)
        late = make_job("a", deadline=time.time() + 0.1)
        assert await h.server.submit(late)
        assert await read_message(reader_a) == late
        await eventually(lambda: late.job_id not in h.server._leases)  # the lease expires
        writer_a.write(protocol.encode(Result.from_outcome(late, ok, started=1, finished=2)))
        marker = make_job("a")  # frames are handled in order: once its result is in, so was
        assert await h.server.submit(marker)  # the late one's
        assert await read_message(reader_a) == marker
        done = CheckOutcome(state=CheckState.OK, output="marker")
        writer_a.write(protocol.encode(Result.from_outcome(marker, done, started=1, finished=2)))
        await eventually(lambda: len(h.results) == 2)
        assert [(n, r.output) for n, r in h.results] == [("ra", "OK"), ("ra", "marker")]


async def test_a_malformed_frame_closes_only_that_connection(h: Harness) -> None:
    await h.start_worker("good", ["a"])
    conn, writer, reader = await raw_worker(h, "bad", ["a"])
    async with conn:
        writer.write(b"\x00\x00\x00\x08not json")
        error = await read_message(reader)
        assert isinstance(error, protocol.Error) and error.code == "protocol_error"
        await asyncio.wait_for(conn.wait_closed(), 5)
    conn, writer, reader = await raw_worker(h, "huge", ["a"])
    async with conn:
        writer.write((protocol.MAX_FRAME + 1).to_bytes(4, "big"))
        assert isinstance(await read_message(reader), protocol.Error)
        await asyncio.wait_for(conn.wait_closed(), 5)
    await eventually(lambda: [w.name for w in h.server.workers()] == ["good"])
    assert await h.server.submit(make_job("a"))
    await eventually(lambda: len(h.results) == 1)


async def test_a_silent_worker_is_dropped_and_its_jobs_move(h: Harness) -> None:
    conn, _, reader = await raw_worker(h, "mute", ["a"])  # never sends a heartbeat
    async with conn:
        job = make_job("a")
        assert await h.server.submit(job)
        assert await read_message(reader) == job
        await h.start_worker("peer", ["a"])
        await eventually(lambda: len(h.results) == 1, within=5 * HEARTBEAT + 2)
        assert h.results[0][0] == "peer"


async def test_a_stalled_event_loop_is_not_taken_for_a_dead_worker(h: Harness) -> None:
    """``up`` on a loaded machine: manager and embedded worker share one loop, and it
    stalls for longer than three heartbeats. The worker's silence was the loop's, not its
    own: it stays connected and runs the next job, with no reconnect."""
    worker = await h.start_worker("same-loop", ["a"])
    await eventually(lambda: len(h.server.workers()) == 1)
    dropped: list[str] = []
    detach = h.server.detach

    def spy(connected: Any, why: str) -> None:
        dropped.append(why)
        detach(connected, why)

    h.server.detach = spy  # type: ignore[method-assign]
    time.sleep(8 * HEARTBEAT)  # noqa: ASYNC251  the stall itself: no heartbeat sent or read
    job = make_job("a")
    assert await h.server.submit(job)
    await eventually(lambda: [r.job_id for _, r in h.results] == [job.job_id])
    assert dropped == [] and worker.failures == 0
    assert [w.name for w in h.server.workers()] == ["same-loop"]


# --- drain and pressure -------------------------------------------------------------------


async def test_drain_finishes_running_jobs_and_stops_new_ones(h: Harness) -> None:
    release = asyncio.Event()

    async def held(job: Job) -> CheckOutcome:
        await release.wait()
        return CheckOutcome(state=CheckState.OK, output="OK - ran on drainer")

    drainer = await h.start_worker("drainer", ["a"], held)
    first = make_job("a")
    assert await h.server.submit(first)
    await eventually(lambda: drainer.in_flight == 1)
    drainer.drain()
    await eventually(lambda: all(w.draining for w in h.server.workers()))
    assert await h.server.submit(make_job("a")) is False
    await h.start_worker("other", ["a"])
    assert await h.server.submit(make_job("a"))
    release.set()
    await eventually(lambda: len(h.results) == 2)
    assert h.ran_on()[first.job_id] == "drainer"
    task = next(t for w, t in h.workers if w is drainer)
    await asyncio.wait_for(task, 5)  # run() returns once drained
    assert [w.name for w in h.server.workers()] == ["other"]


class Refuse:
    volatile = False

    def check(self, load: object) -> tuple[bool, str]:
        return False, "load 9.00 per core > 2.5"


async def test_a_worker_under_pressure_says_why_and_runs_fewer_jobs_not_none(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """A loaded machine slows its checks down; refusing them all would blind the zone."""
    caplog.set_level(logging.WARNING, "watchkeeper.transport.client")
    release = asyncio.Event()
    hot = await h.start_worker(
        "hot", ["a"], held_jobs(release), concurrency=8, sensor_list=[Refuse()]
    )
    await eventually(lambda: h.server.workers()[0].capacity == 2)  # a quarter of 8
    info = h.server.workers()[0]
    assert info.accepting and info.reason == "load 9.00 per core > 2.5"
    assert h.server.zone_online("a")
    jobs = [make_job("a") for _ in range(5)]
    for job in jobs:
        assert await h.server.submit(job)
    await eventually(lambda: hot.in_flight == 2)
    assert h.server.waiting() == {"a": 3}  # held for the worker's next free slot
    release.set()
    await eventually(lambda: len(h.results) == 5)
    assert h.lost == []
    assert any(
        "under pressure (load 9.00 per core > 2.5): taking at most 2 job(s) at once instead of 8"
        in r.getMessage()
        for r in caplog.records
    )


# --- waiting for a free slot ---------------------------------------------------------------


def held_jobs(release: asyncio.Event) -> Callable[[Job], Awaitable[CheckOutcome]]:
    async def held(job: Job) -> CheckOutcome:
        await release.wait()
        return CheckOutcome(state=CheckState.OK, output="OK - ran on busy")

    return held


async def test_a_burst_beyond_the_zones_slots_waits_and_all_of_it_runs(h: Harness) -> None:
    release = asyncio.Event()
    busy = await h.start_worker("busy", ["a"], held_jobs(release), concurrency=2)
    jobs = [make_job("a") for _ in range(10)]
    for job in jobs:
        assert await h.server.submit(job)  # two leased, eight waiting: none refused
    await eventually(lambda: busy.in_flight == 2)
    assert h.server.waiting() == {"a": 8}
    assert await h.server.submit(jobs[-1])  # a waiting job submitted again is not queued twice
    assert h.server.waiting() == {"a": 8}
    # Full, the worker says it refuses work; being full is no reason to refuse the job.
    await eventually(lambda: not h.server.workers()[0].accepting)
    jobs.append(make_job("a"))
    assert await h.server.submit(jobs[-1])
    assert h.server.waiting() == {"a": 9}
    release.set()
    await eventually(lambda: len(h.results) == 11)
    assert sorted(r.job_id for _, r in h.results) == sorted(j.job_id for j in jobs)
    assert h.server.waiting() == {} and h.lost == []


async def test_the_wait_is_bounded_by_count_and_by_the_deadline(h: Harness) -> None:
    h.server._max_waiting = 2  # the default (10,000) is too many to fill in a test
    release = asyncio.Event()
    await h.start_worker("busy", ["a"], held_jobs(release), concurrency=1)
    assert await h.server.submit(make_job("a"))
    assert await h.server.submit(make_job("a"))
    late = make_job("a", deadline=time.time() + 0.5)
    assert await h.server.submit(late)
    assert await h.server.submit(make_job("a")) is False  # the queue is full
    # Its check cannot start in time any more: reported lost, with why, not run late.
    await eventually(lambda: [j.job_id for j, _ in h.lost] == [late.job_id])
    assert h.lost[0][1] == "no worker of zone a was free in time"
    release.set()
    await eventually(lambda: len(h.results) == 2)


async def test_waiting_jobs_are_lost_with_the_reason_when_the_zones_last_worker_leaves(
    h: Harness,
) -> None:
    never = asyncio.Event()
    worker = await h.start_worker("only", ["a"], held_jobs(never), concurrency=1)
    running, waiting = make_job("a"), make_job("a")
    assert await h.server.submit(running)
    assert await h.server.submit(waiting)
    await eventually(lambda: worker.in_flight == 1)
    task = next(t for w, t in h.workers if w is worker)
    task.cancel()
    await eventually(lambda: len(h.lost) == 2)
    assert {j.job_id: why for j, why in h.lost} == {
        running.job_id: "no worker for zone a",
        waiting.job_id: "no worker for zone a",
    }
    assert h.server.waiting() == {}


async def test_check_dummy_runs_as_a_subprocess(h: Harness) -> None:
    plugin = CHECK_DUMMY
    if not HAVE_CHECK_DUMMY:
        pytest.skip("monitoring-plugins not installed")

    async def run(job: Job) -> CheckOutcome:
        proc = await asyncio.create_subprocess_exec(
            plugin, "1", "degraded", stdout=asyncio.subprocess.PIPE
        )
        out, _ = await proc.communicate()
        assert proc.returncode is not None
        return CheckOutcome(
            state=CheckState.from_exit_code(proc.returncode), output=out.decode().strip()
        )

    await h.start_worker("plugins", ["a"], run)
    assert await h.server.submit(make_job("a"))
    await eventually(lambda: len(h.results) == 1)
    result = h.results[0][1]
    assert (result.state, result.output) == (1, "WARNING: degraded")
