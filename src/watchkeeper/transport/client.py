"""The worker side of the job transport: dial the manager, take jobs, send results.

A worker only dials out. It pins the manager's host key by fingerprint (``SHA256:...``) and
refuses any other key before authenticating, so a man in the middle learns nothing and
gets no results. It authenticates with its own key, opens the ``watchkeeper-jobs@v1``
subsystem, says hello and is told in the welcome which zones its key serves.

Jobs run concurrently up to ``concurrency`` (fewer while the machine is under pressure,
see `sensors`); each result goes back on the connection it came from. If that connection
is gone the job is cancelled: the manager has already moved it to a peer. Lost
connections are redialled with exponential backoff and jitter (`backoff_delay`), and the
worker says so (`link.LinkLog`): a warning when the link is lost or the first dial fails,
with what to do when the manager refused the key, a reminder while it stays down, and a
NOTICE when it is back. A host-key mismatch is never retried, since it needs a person.
`drain` (SIGTERM) tells the manager to send nothing new, finishes the running jobs, then
closes.
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
    """How a worker reaches its manager and what it tells it."""

    host: str
    port: int = 4730
    key_path: Path
    manager_fingerprint: str
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
    keepalive_interval: float = 15.0


class _PinningClient(asyncssh.SSHClient):
    def __init__(self, pinned: str) -> None:
        self.pinned = pinned
        self.seen: str | None = None

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        self.seen = key.get_fingerprint("sha256")
        return self.seen == self.pinned


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
        on_link: Callable[[bool, float], None] | None = None,
    ) -> None:
        self.settings = settings
        #: Told (connected, heartbeat interval) on a welcome, each heartbeat and a loss:
        #: how ``watchkeeper health`` learns the link (`watchkeeper.liveness`).
        self._on_link = on_link or (lambda connected, interval: None)
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
        self.failures = 0
        self._link = LinkLog(
            f"{settings.host}:{settings.port}",
            lambda: enrol_hint(settings.name, settings.zones, settings.key_path),
            clock=time.monotonic,
        )

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    # --- control --------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, serve, reconnect with backoff; return once drained or stopped.

        Raises `HostKeyMismatch` at once: a wrong manager key is not a transient failure.
        """
        while not (self._stopping or self._draining):
            error: TransportError | None = None
            try:
                await self._serve()
            except (HostKeyMismatch, EnrolmentMismatch):
                raise
            except TransportError as exc:
                error = exc
            if self._stopping or self._draining:
                break
            self.failures += 1
            delay = backoff_delay(
                self.failures,
                base=self.settings.backoff_base,
                cap=self.settings.backoff_cap,
                rng=self._rng,
            )
            self._link.down(error, delay)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
        await self._cancel_jobs()

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

    async def _serve(self) -> None:
        s = self.settings
        pin = _PinningClient(s.manager_fingerprint)
        where = f"{s.host}:{s.port}"
        try:
            conn = await asyncssh.connect(
                s.host,
                s.port,
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
                f"pins {s.manager_fingerprint}; refusing to connect"
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
                self._on_link(False, self.welcome.heartbeat_interval if self.welcome else 0.0)
                await self._cancel_jobs(everything=self._stopping)
            if session.error is not None:
                raise session.error
            if session.reconnect:
                self._link.asked(session.reconnect)
            elif session.welcomed and not (self._stopping or self._draining):
                self._link.lost(session.closed_why)

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
        self.failures = 0
        self.connected.set()
        self._link.up(welcome)
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
            self._on_link(True, self.welcome.heartbeat_interval)

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
        self.welcomed = False
        self.error: TransportError | None = None
        self.closed_why = ""
        #: Why the manager asked this worker to log in again, or "".
        self.reconnect = ""
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._beats: asyncio.Task[None] | None = None

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
