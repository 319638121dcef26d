"""The worker side of the job transport: dial the manager, take jobs, send results.

A worker only dials out. It pins the manager's host key by fingerprint (``SHA256:...``, or
several for a cluster whose managers do not share one) and refuses any other key before
authenticating, so a man in the middle learns nothing and gets no results. It
authenticates with its own key, opens the ``watchkeeper-jobs@v1`` subsystem, says hello
and is told in the welcome which zones its key serves.

Jobs run concurrently up to ``concurrency`` (fewer while the machine is under pressure,
see `sensors`); each result goes back on the connection it came from. If that connection
is gone the job is cancelled: the manager has already moved it to a peer.

High availability: a worker may know several managers (the leader and its standbys). Any
failure, a refused dial, a timeout, a lost link or a manager gone silent, sends it to the
next manager of its list at once; only when every manager failed in a row does it wait,
with exponential backoff and jitter (`backoff_delay`), before the next round. A manager
that stops answering without closing (frozen, its machine hung: the kernel may still ACK)
is left after `protocol.MISSED_HEARTBEATS` heartbeat intervals (`_WorkerSession.watch`).
The worker says what happens (`link.LinkLog`): a warning when the link is lost or the
first dial fails, with what to do when the manager refused the key, a reminder while it
stays down, and a NOTICE when it is back. A host-key mismatch is never retried, since it
needs a person. `drain` (SIGTERM) tells the manager to send nothing new, finishes the
running jobs, then closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

from watchkeeper import __version__
from watchkeeper.addresses import JOBS_PORT, join_host_port
from watchkeeper.backoff import backoff_delay
from watchkeeper.logs import NOTICE
from watchkeeper.results import CheckOutcome, CheckState
from watchkeeper.transport import protocol, sensors
from watchkeeper.transport.errors import (
    AuthRefused,
    EnrolmentMismatch,
    HostKeyMismatch,
    ManagerUnreachable,
    ProtocolError,
    TransportError,
)
from watchkeeper.transport.link import LinkLog, enrol_hint
from watchkeeper.transport.protocol import Job
from watchkeeper.transport.session import FramedSession

logger = logging.getLogger(__name__)

RunJob = Callable[[Job], Awaitable[CheckOutcome]]

#: Preferred ciphers: AES-GCM roughly doubles message throughput over the default here.
CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com")
#: Seconds a job may run past its own timeout before the worker gives its slot back.
JOB_GRACE = 5.0


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerSettings:
    """How a worker reaches its managers and what it tells them."""

    #: The first manager dialled.
    host: str
    port: int = JOBS_PORT
    #: The other managers of a high-availability cluster, (host, port), dialled in this
    #: order after ``host:port`` whenever the one before fails.
    more_managers: tuple[tuple[str, int], ...] = ()
    key_path: Path
    manager_fingerprint: str
    #: Other host keys accepted, for managers that do not share one (``keys import``).
    more_fingerprints: tuple[str, ...] = ()
    name: str = field(default_factory=socket.gethostname)
    #: Claims shown to operators; the key's enrolment decides what the worker serves.
    labels: dict[str, str] = field(default_factory=dict)
    zones: tuple[str, ...] = ()
    concurrency: int = 8
    #: The host this worker was started as the agent of (``--agent-for``): a welcome that
    #: grants another role ends the worker (`EnrolmentMismatch`). None: whatever the key is.
    agent_for: str | None = None
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    connect_timeout: float = 10.0
    #: SSH keepalive until the welcome; then the welcome's heartbeat interval rules.
    keepalive_interval: float = 15.0

    @property
    def managers(self) -> tuple[tuple[str, int], ...]:
        """Every manager, in the order they are dialled."""
        return ((self.host, self.port), *self.more_managers)

    @property
    def fingerprints(self) -> tuple[str, ...]:
        """Every host key fingerprint accepted."""
        return (self.manager_fingerprint, *self.more_fingerprints)


def backoff_rounds(failures: int, managers: int) -> int:
    """How many rounds of the manager list have failed, once ``failures`` tries failed in a
    row: the backoff's exponent; 0 while this round still has a manager to dial (at once)."""
    return 0 if failures % managers else failures // managers


@dataclass(frozen=True, slots=True)
class _Ended:
    """How a welcomed session ended without an error."""

    why: str
    #: The manager closed it for this worker to log in again (new grants): dial it again.
    relogin: bool


class _PinningClient(asyncssh.SSHClient):
    def __init__(self, pinned: tuple[str, ...]) -> None:
        self.pinned = pinned
        self.seen: str | None = None

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        self.seen = key.get_fingerprint("sha256")
        return self.seen in self.pinned


class WorkerConnection:
    """One worker's link to its manager; `run` until drained or stopped."""

    def __init__(
        self,
        settings: WorkerSettings,
        run_job: RunJob,
        *,
        sensor_list: Sequence[sensors.Sensor] | None = None,
        load: Callable[[], float] = sensors.load_per_core,
        rng: random.Random | None = None,
        on_link: Callable[[bool, float, str], None] | None = None,
    ) -> None:
        self.settings = settings
        #: Told (connected, heartbeat interval, manager ``host:port``) on a welcome, each
        #: heartbeat and a loss: how ``watchkeeper health`` learns the link
        #: (`watchkeeper.liveness`).
        self._on_link = on_link or (lambda connected, interval, manager: None)
        self._run_job = run_job
        self._sensors = list(sensors.default_sensors() if sensor_list is None else sensor_list)
        self._load = load
        self._rng = rng or random.Random()
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        #: Of those, jobs that must run at most once (actions): a lost link does not cancel
        #: them half-way; they finish, their result is lost, and the manager verifies.
        self._once: set[asyncio.Task[None]] = set()
        self._session: _WorkerSession | None = None
        self._stable: tuple[bool, str] = (True, "")
        #: The last (accepting, capacity, reason) sent.
        self._reported: tuple[bool, int, str] | None = None
        self._draining = False
        self._stopping = False
        self._wake = asyncio.Event()
        self.welcome: protocol.Welcome | None = None
        #: Set while a session is welcomed; tests and ``up`` wait on it.
        self.connected = asyncio.Event()
        #: The manager of the last welcome, ``host:port``.
        self.manager = ""
        #: Tries failed in a row since the last welcome.
        self.failures = 0
        self._link = LinkLog(
            " or ".join(join_host_port(*m) for m in settings.managers),
            lambda: enrol_hint(settings.name, settings.zones, settings.key_path),
            clock=time.monotonic,
        )

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    # --- control --------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, serve, fail over or back off; return once drained or stopped.

        A failed manager hands over to the next of the list at once; the backoff applies
        only when a whole round failed. Raises `HostKeyMismatch` and `EnrolmentMismatch` at
        once: a wrong manager key or a wrong enrolment is not a transient failure.
        """
        managers = self.settings.managers
        turn = 0
        while not (self._stopping or self._draining):
            host, port = managers[turn % len(managers)]
            where = join_host_port(host, port)
            error: TransportError | None = None
            ended: _Ended | None = None
            try:
                ended = await self._serve(where, host, port)
            except (HostKeyMismatch, EnrolmentMismatch):
                raise
            except TransportError as exc:
                error = exc
            if self._stopping or self._draining:
                break
            self.failures += 1
            if ended is None or not ended.relogin:
                turn += 1
            delay = self._next_delay()
            then = None if delay else join_host_port(*managers[turn % len(managers)])
            if ended is not None and ended.relogin:
                self._link.asked(ended.why, where)
            elif ended is not None:
                self._link.lost(ended.why, where, then=then)
            self._link.down(error, delay, then=then)
            if delay:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
        await self._cancel_jobs()

    def _next_delay(self) -> float:
        """Seconds before the next dial: none while this round has managers left to try."""
        rounds = backoff_rounds(self.failures, len(self.settings.managers))
        if not rounds:
            return 0.0
        s = self.settings
        return backoff_delay(rounds, base=s.backoff_base, cap=s.backoff_cap, rng=self._rng)

    def drain(self, reason: str = "draining") -> None:
        """Take no new jobs, finish the running ones, then disconnect and end `run`."""
        if self._draining:
            return
        self._draining = True
        self._wake.set()
        session = self._session
        if session is not None:
            session.send(protocol.Drain(reason=reason))
            self._maybe_close_drained()

    def stop(self) -> None:
        """Disconnect now; running jobs are cancelled (the manager re-leases them)."""
        self._stopping = True
        self._wake.set()
        if self._session is not None:
            self._session.close()

    # --- one connection -------------------------------------------------------------------

    async def _serve(self, where: str, host: str, port: int) -> _Ended | None:
        """One connection to the manager at ``where``, until it ends; how it ended, or None
        when this worker ended it (stop, drain)."""
        s = self.settings
        pin = _PinningClient(s.fingerprints)
        try:
            conn = await asyncssh.connect(
                host,
                port,
                client_factory=lambda: pin,
                username=s.name,
                client_keys=[s.key_path],
                known_hosts=([], [], []),
                server_host_key_algs=["ssh-ed25519"],
                encryption_algs=list(CIPHERS),
                preferred_auth=["publickey"],
                agent_path=None,
                password=None,
                config=None,
                connect_timeout=s.connect_timeout,
                keepalive_interval=s.keepalive_interval,
            )
        except asyncssh.HostKeyNotVerifiable as exc:
            raise HostKeyMismatch(
                f"the manager at {where} presented host key {pin.seen}, but this worker "
                f"pins {' or '.join(s.fingerprints)}; refusing to connect"
            ) from exc
        except asyncssh.PermissionDenied as exc:
            raise AuthRefused(f"the manager at {where} refused key {s.key_path}") from exc
        except (OSError, asyncssh.Error, TimeoutError) as exc:
            raise ManagerUnreachable(f"cannot reach the manager at {where}: {exc}") from exc
        async with conn:
            try:
                _, session = await conn.create_session(
                    lambda: _WorkerSession(self, conn),
                    subsystem=protocol.SUBSYSTEM,
                    encoding=None,
                )
            except asyncssh.Error as exc:
                raise ManagerUnreachable(f"{where} refused the job subsystem: {exc}") from exc
            assert isinstance(session, _WorkerSession)
            session.where = where
            self._session = session
            session.send(
                protocol.Hello(
                    name=s.name,
                    version=__version__,
                    labels=s.labels,
                    zones=list(s.zones),
                    concurrency=s.concurrency,
                )
            )
            if self._draining:
                session.send(protocol.Drain(reason="draining"))
            try:
                await session.done
            finally:
                self._session = None
                self.connected.clear()
                interval = self.welcome.heartbeat_interval if self.welcome else 0.0
                self._on_link(False, interval, where)
                await self._cancel_jobs(everything=self._stopping)
            if session.error is not None:
                raise session.error
            ended = session.ended(by_us=self._stopping or self._draining)
        return ended

    # --- called by the session ------------------------------------------------------------

    def _welcomed(self, session: _WorkerSession, welcome: protocol.Welcome) -> None:
        wanted = self.settings.agent_for
        if wanted is not None and welcome.agent_for != wanted:
            granted = (
                f"as the agent of {welcome.agent_for}"
                if welcome.agent_for
                else f"as a worker for zones {', '.join(welcome.zones) or '(none)'}"
            )
            session.error = EnrolmentMismatch(
                f"this worker was started as the agent of {wanted} (--agent-for), but the "
                f"manager enrolled its key {granted}; enrol it with `watchkeeper worker-key "
                f"add {welcome.name} --agent-for {wanted} ...` (or approve {wanted}'s pending "
                "agent key)"
            )
            session.close()
            return
        self.welcome = welcome
        self.manager = session.where
        self.failures = 0
        self.connected.set()
        self._link.up(welcome, session.where)
        session.watch(welcome.heartbeat_interval)
        session.start_heartbeats(welcome.heartbeat_interval)
        self._maybe_close_drained()

    def _job(self, session: _WorkerSession, job: Job) -> None:
        task = asyncio.create_task(self._run(session, job), name=f"job-{job.job_id}")
        self._tasks.add(task)
        if job.once:
            self._once.add(task)
        task.add_done_callback(self._job_done)
        self._pressure(session)

    def _job_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._once.discard(task)
        session = self._session
        if session is not None:
            self._pressure(session)
        self._maybe_close_drained()

    async def _run(self, session: _WorkerSession, job: Job) -> None:
        async with self._slots:
            started = time.time()
            guard = max(job.deadline - started, job.timeout) + JOB_GRACE
            try:
                async with asyncio.timeout(guard):
                    outcome = await self._run_job(job)
            except TimeoutError:
                outcome = CheckOutcome(
                    state=CheckState.UNKNOWN,
                    output=f"UNKNOWN - job ran past its deadline on worker {self.settings.name}",
                )
            except Exception as exc:
                logger.exception("job %s (%s) failed", job.job_id, job.describe())
                outcome = CheckOutcome(
                    state=CheckState.UNKNOWN,
                    output=f"UNKNOWN - worker {self.settings.name}: {type(exc).__name__}: {exc}",
                )
            finished = time.time()
        session.send(protocol.Result.from_outcome(job, outcome, started=started, finished=finished))

    def _heartbeat(self, session: _WorkerSession) -> None:
        """The periodic beat: re-read the slow sensors, then report."""
        load = sensors.WorkerLoad(in_flight=self.in_flight, concurrency=self.settings.concurrency)
        self._stable = sensors.evaluate([s for s in self._sensors if not s.volatile], load)
        self._pressure(session, force=True)
        if self.welcome is not None:
            self._on_link(True, self.welcome.heartbeat_interval, session.where)

    def _pressure(self, session: _WorkerSession, *, force: bool = False) -> None:
        """Report when what the worker offers changes (or on a heartbeat).

        A volatile sensor's no (all slots taken) stops new jobs; a system sensor's no
        (load, memory) only lowers the capacity offered, logged when it starts and ends.
        """
        concurrency = self.settings.concurrency
        load = sensors.WorkerLoad(in_flight=self.in_flight, concurrency=concurrency)
        calm, pressure = self._stable
        free, full = sensors.evaluate([s for s in self._sensors if s.volatile], load)
        capacity = concurrency if calm else sensors.pressured_capacity(concurrency)
        accepting = free and not self._draining
        reason = ("draining" if self._draining else full) if not accepting else pressure
        verdict = (accepting, capacity, reason)
        before = self._reported
        was_pressed = before is not None and before[1] < concurrency
        if was_pressed != (capacity < concurrency):
            if capacity < concurrency:
                logger.warning(
                    "under pressure (%s): taking at most %d job(s) at once instead of %d",
                    pressure,
                    capacity,
                    concurrency,
                    extra={"action": "worker_pressure"},
                )
            else:
                logger.log(
                    NOTICE,
                    "pressure over: taking %d jobs at once again",
                    concurrency,
                    extra={"action": "worker_pressure_over"},
                )
        if force or before is None or verdict[:2] != before[:2]:
            self._reported = verdict
            session.send(
                protocol.Heartbeat(
                    in_flight=self.in_flight,
                    load=self._load(),
                    accepting=accepting,
                    capacity=capacity,
                    reason=reason,
                )
            )

    def _maybe_close_drained(self) -> None:
        session = self._session
        if self._draining and not self._tasks and session is not None and session.welcomed:
            logger.info("drained: closing the manager connection")
            session.close()

    async def _cancel_jobs(self, *, everything: bool = True) -> None:
        """Cancel the running jobs; on a lost link (not ``everything``) an at-most-once job
        (an action) is left to finish: stopping a restart or a deploy half-way is worse
        than finishing it, and its manager re-checks the target instead of re-running it."""
        tasks = [t for t in self._tasks if everything or t not in self._once]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class _WorkerSession(FramedSession, asyncssh.SSHClientSession[bytes]):
    """The client end of the job subsystem."""

    def __init__(self, worker: WorkerConnection, conn: asyncssh.SSHClientConnection) -> None:
        super().__init__(conn)
        self._worker = worker
        self._ssh = conn
        #: The manager's ``host:port``, as dialled.
        self.where = ""
        self.welcomed = False
        self.error: TransportError | None = None
        self.closed_why = ""
        #: Why the manager asked this worker to log in again, or "".
        self.reconnect = ""
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._beats: asyncio.Task[None] | None = None

    def ended(self, *, by_us: bool) -> _Ended | None:
        """How this session ended, once it did without an error; None if ``by_us``."""
        if self.reconnect:
            return _Ended(self.reconnect, relogin=True)
        if self.welcomed and not by_us:
            return _Ended(self.closed_why, relogin=False)
        return None

    def watch(self, interval: float) -> None:
        """Drop this connection once the manager answered nothing for `MISSED_HEARTBEATS`
        heartbeat intervals.

        SSH keepalives, not a check on the job channel: an idle manager sends nothing there
        (no job due, no reply to heartbeats), so silence on it is normal, and a check of
        our own would need a new message both ends speak. A keepalive is a request every
        SSH server answers, from the same event loop that serves jobs; it goes out only
        after an interval with nothing received, any byte received counts as life, and
        one stall of our own loop counts one miss, not many. asyncssh closes after
        ``count_max`` unanswered requests plus one more interval, hence the minus one.
        """
        self._ssh.set_keepalive(interval, protocol.MISSED_HEARTBEATS - 1)

    def start_heartbeats(self, interval: float) -> None:
        self._beats = asyncio.create_task(self._beat(interval), name="worker-heartbeat")

    async def _beat(self, interval: float) -> None:
        while True:
            self._worker._heartbeat(self)
            await asyncio.sleep(interval)

    def on_message(self, message: protocol.Message) -> None:
        if isinstance(message, protocol.Welcome) and not self.welcomed:
            self.welcomed = True
            self._worker._welcomed(self, message)
        elif not self.welcomed:
            raise ProtocolError(f"expected welcome, got {message.type}")
        elif isinstance(message, Job):
            self._worker._job(self, message)
        elif isinstance(message, protocol.Drain):
            self._worker.drain(message.reason or "requested by the manager")
        elif isinstance(message, protocol.Error) and message.code == protocol.RECONNECT:
            self.reconnect = message.message
        elif isinstance(message, protocol.Error):
            self.error = ManagerUnreachable(
                f"the manager closed: {message.code}: {message.message}"
            )
        else:
            raise ProtocolError(f"a manager may not send {message.type}")

    def on_closed(self, why: str) -> None:
        self.closed_why = why
        if self._beats is not None:
            self._beats.cancel()
        if not self.welcomed and self.error is None:
            self.error = ManagerUnreachable(f"the manager closed the session: {why}")
        if not self.done.done():
            self.done.set_result(None)
