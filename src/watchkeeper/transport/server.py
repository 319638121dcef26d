"""The manager's job server: SSH on port 4730 serving one subsystem, the job protocol.

Principle 2, "workers call home; the manager decides": a connection authenticates with a
public key only, looked up in a `KeyRegistry`; the zones and labels it serves come from
that key's enrolment, never from its hello. Everything else SSH offers (passwords,
keyboard-interactive, host-based auth, shell, exec, SFTP, SCP, port forwarding both ways,
X11, agent forwarding, ptys) is refused at the request, so a worker key cannot be used to
get a shell on the manager.

Leases: each job sent is held against its worker until its result arrives or its deadline
passes. When a worker's connection drops, or it misses three heartbeats, its leased jobs go
to a peer of the same zone (or to ``on_lost`` when there is none). A result counts only
from the worker holding the lease and quoting the job's token, once; anything else (late,
duplicate, from another worker) is ignored, so results are idempotent by job id. A job
marked ``once`` (a remediation action) is never moved: it may have run, so it is lost.

Waiting: a job whose workers are all busy waits in a bounded queue of its pool (zone,
agent and required labels) and goes to the first slot that frees, oldest first, instead of
being refused; bursts larger than a zone's slots therefore queue briefly rather than
turning checks UNKNOWN. A job waits only while it can still finish before its deadline
(its check's timeout still fits), and at most ``max_waiting`` jobs wait per pool; past
either it is refused or reported lost with the reason, so nothing piles up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import asyncssh

from watchkeeper.addresses import JOBS_PORT
from watchkeeper.errors import WatchkeeperError
from watchkeeper.jobs import routing
from watchkeeper.jobs.pools import no_worker_reason, pool_agent, pool_of
from watchkeeper.transport import protocol
from watchkeeper.transport.errors import ProtocolError
from watchkeeper.transport.protocol import Job, Result
from watchkeeper.transport.registry import KeyRegistry
from watchkeeper.transport.sshd import SSHServer
from watchkeeper.transport.workers import ConnectedWorker, WorkerInfo

__all__ = ["DEFAULT_HEARTBEAT", "DEFAULT_PORT", "JobServer", "WorkerInfo"]

logger = logging.getLogger(__name__)

DEFAULT_PORT = JOBS_PORT
DEFAULT_HEARTBEAT = 5.0
#: Missed heartbeats after which a silent worker is disconnected and its jobs moved.
MISSED_HEARTBEATS = protocol.MISSED_HEARTBEATS
#: Seconds between two log lines about the same refused worker key.
REFUSAL_LOG_EVERY = 3600.0
#: Jobs that may wait for a free slot per pool; past that `submit` refuses.
DEFAULT_MAX_WAITING = 10_000

ResultHandler = Callable[[str, Result], None]
LostHandler = Callable[[Job, str], None]


@dataclass(slots=True)
class _Lease:
    job: Job
    worker: ConnectedWorker


#: Jobs wait per (zone, agent, required labels): every job of a pool suits the same workers.
_Pool = tuple[str, str | None, frozenset[tuple[str, str]]]


def _pool_of(job: Job) -> _Pool:
    return job.zone, job.agent, frozenset(job.requires.items())


def _pool_name(job: Job) -> str:
    return pool_of(job.zone, job.agent)


def _fits(job: Job, now: float) -> bool:
    """Whether the job's check can still finish before its deadline if it starts now."""
    return now + job.timeout < job.deadline


class JobServer:
    """The SSH job server; `start` it, `submit` jobs, get results through ``on_result``.

    ``on_result(worker_name, result)`` and ``on_lost(job, reason)`` are called on the event
    loop and must not block: post an event and return.
    """

    def __init__(
        self,
        *,
        registry: KeyRegistry,
        host_key: asyncssh.SSHKey,
        on_result: ResultHandler,
        on_lost: LostHandler | None = None,
        host: str = "0.0.0.0",
        port: int = DEFAULT_PORT,
        heartbeat_interval: float = DEFAULT_HEARTBEAT,
        clock: Callable[[], float] = time.time,
        max_waiting: int = DEFAULT_MAX_WAITING,
        may_send: Callable[[], bool] = lambda: True,
    ) -> None:
        self.registry = registry
        #: Asked before every job frame: a fenced leader (`watchkeeper.cluster`) sends none.
        self._may_send = may_send
        #: Job frames withheld because ``may_send`` said no.
        self.fenced = 0
        self._host_key = host_key
        self._on_result = on_result
        self._on_lost = on_lost
        self._host, self._port = host, port
        self.heartbeat_interval = heartbeat_interval
        self._clock = clock
        self._workers: set[ConnectedWorker] = set()
        self._leases: dict[str, _Lease] = {}
        self._waiting: dict[_Pool, deque[Job]] = {}
        self._waiting_ids: set[str] = set()
        self._max_waiting = max_waiting
        self._assignments = 0
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self._monitor: asyncio.Task[None] | None = None
        #: Fingerprint of a refused key -> when its refusal was last logged (monotonic).
        self._refused: dict[str, float] = {}

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self._acceptor = await asyncssh.listen(
            self._host,
            self._port,
            server_factory=lambda: SSHServer(self),
            server_host_keys=[self._host_key],
            public_key_auth=True,
            password_auth=False,
            kbdint_auth=False,
            host_based_auth=False,
            gss_host=None,
            allow_pty=False,
            x11_forwarding=False,
            agent_forwarding=False,
            sftp_factory=None,
            allow_scp=False,
            keepalive_interval=self.heartbeat_interval * MISSED_HEARTBEATS,
            login_timeout=30,
            config=None,
        )
        self._monitor = asyncio.create_task(self._watch(), name="job-server-monitor")
        logger.info("job server listening on %s:%d", self._host, self.port)

    @property
    def dial_host(self) -> str:
        """Where a worker on this machine dials: the bound address, loopback for a wildcard."""
        return "127.0.0.1" if self._host in ("", "0.0.0.0", "::") else self._host

    @property
    def port(self) -> int:
        """The bound port (useful when started on port 0)."""
        return self._acceptor.get_port() if self._acceptor else self._port

    async def aclose(self) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
        for worker in list(self._workers):
            worker.peer.close()
        if self._acceptor is not None:
            self._acceptor.close()
            await self._acceptor.wait_closed()

    async def __aenter__(self) -> JobServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- the manager's API ----------------------------------------------------------------

    async def submit(self, job: Job) -> bool:
        """Lease ``job`` to the least-loaded worker allowed to run it, or queue it while
        they are all busy; False when no ready worker may run it or its queue is full."""
        if job.job_id in self._leases or job.job_id in self._waiting_ids:
            return True  # already leased or waiting: submitting again must not run it twice
        if not self._may_send():
            self.fenced += 1
            return False
        return self._place(job, exclude=None)

    def waiting(self) -> dict[str, int]:
        """Jobs waiting for a free slot, per pool name (zone, or ``agent:HOST``)."""
        out: dict[str, int] = {}
        for queue in self._waiting.values():
            if queue:
                name = _pool_name(queue[0])
                out[name] = out.get(name, 0) + len(queue)
        return out

    def workers(self) -> list[WorkerInfo]:
        return sorted((w.info() for w in self._workers if w.hello), key=lambda i: i.name)

    def zone_online(self, zone: str) -> bool:
        """Whether any connected worker can serve the pool ``zone`` (busy or not).

        A pool is a zone, served by its (non-agent) workers, or ``agent:HOST``, served by
        that host's agent (`watchkeeper.document.normalize.CheckRecord.pool`).
        """
        agent = pool_agent(zone)
        if agent is not None:
            return any(w.hello is not None and w.agent_for == agent for w in self._workers)
        return any(
            w.hello is not None and w.agent_for is None and zone in w.zones for w in self._workers
        )

    def first_refusal(self, fingerprint: str) -> bool:
        """Whether a refused key is worth a log line: the first time, then once an hour.

        A revoked worker redials for ever; its manager should say so, not fill the log.
        """
        now = self._clock()
        last = self._refused.get(fingerprint)
        if last is not None and now - last < REFUSAL_LOG_EVERY:
            return False
        if len(self._refused) >= 1024:
            self._refused.clear()
        self._refused[fingerprint] = now
        return True

    def revoke(self, name: str) -> int:
        """Close every connection of key ``name`` now; returns how many were closed.

        Revoke the key in the registry first, or it will simply reconnect.
        """
        return self._close(
            name,
            logging.WARNING,
            "closing revoked worker %s",
            protocol.Error(code="revoked", message="this worker's key was revoked"),
        )

    def regrant(self, name: str) -> int:
        """Key ``name``'s grants changed: close its connections so it logs in with the new.

        A connection's zones are fixed at login; the worker redials after its backoff.
        """
        return self._close(
            name,
            logging.INFO,
            "worker %s reconnects for new grants",
            protocol.Error(code=protocol.RECONNECT, message="this worker's key has new grants"),
        )

    def _close(self, name: str, level: int, message: str, why: protocol.Error) -> int:
        """Tell each connection of ``name`` why it is closed, then close it."""
        closing = [w for w in self._workers if w.name == name]
        for worker in closing:
            logger.log(level, message, name, extra={"action": f"worker_{why.code}"})
            worker.peer.send(why)
            worker.peer.close()
        return len(closing)

    def drain(self, name: str, reason: str = "requested by the manager") -> None:
        """Ask worker ``name`` to finish its jobs and disconnect; it gets nothing new."""
        for worker in self._workers:
            if worker.name == name:
                worker.draining = True
                worker.peer.send(protocol.Drain(reason=reason))

    # --- routing and leases ---------------------------------------------------------------

    def _place(self, job: Job, *, exclude: ConnectedWorker | None) -> bool:
        """Lease the job, or queue it when a ready worker could take it once a slot frees."""
        if self._lease(job, exclude=exclude):
            return True
        if not _fits(job, self._clock()):
            return False
        # Worth waiting for: a worker of the pool that takes work, or one that is only full
        # (its in-flight sensor refuses while all its slots hold our leases).
        could = any(
            w is not exclude
            and w.hello is not None
            and not w.draining
            and (w.accepting or w.leased > 0)
            and routing.serves(w, job.zone, job.requires, job.agent)
            for w in self._workers
        )
        queue = self._waiting.setdefault(_pool_of(job), deque())
        if not could or len(queue) >= self._max_waiting:
            return False
        queue.append(job)
        self._waiting_ids.add(job.job_id)
        return True

    def _pump(self, worker: ConnectedWorker) -> None:
        """A slot of ``worker`` may be free: give it waiting jobs of its pools, oldest first."""
        if not self._waiting or not worker.ready or not self._may_send():
            return
        now = self._clock()
        for (zone, agent, requires), queue in self._waiting.items():
            if not queue or not routing.serves(worker, zone, dict(requires), agent):
                continue
            while queue and worker.leased < worker.capacity:
                job = queue.popleft()
                self._waiting_ids.discard(job.job_id)
                if _fits(job, now):
                    self._assign(job, worker)
                else:
                    self._lost(job, f"no worker of zone {zone} was free in time")
            if worker.leased >= worker.capacity:
                return

    def _expire_waiting(self, now: float) -> None:
        """Report waiting jobs that can no longer finish in time, or whose pool is gone."""
        for (zone, agent, requires), queue in self._waiting.items():
            if not queue:
                continue
            alive = any(
                w.hello is not None and routing.serves(w, zone, dict(requires), agent)
                for w in self._workers
            )
            kept: deque[Job] = deque()
            for job in queue:
                if alive and _fits(job, now):
                    kept.append(job)
                    continue
                self._waiting_ids.discard(job.job_id)
                reason = (
                    f"no worker of zone {zone} was free in time"
                    if alive
                    else no_worker_reason(_pool_name(job))
                )
                self._lost(job, reason)
            self._waiting[(zone, agent, requires)] = kept
        self._waiting = {pool: queue for pool, queue in self._waiting.items() if queue}

    def _lost(self, job: Job, reason: str) -> None:
        if self._on_lost is not None:
            self._on_lost(job, reason)

    def _lease(self, job: Job, *, exclude: ConnectedWorker | None) -> bool:
        candidates = (w for w in self._workers if w is not exclude)
        worker = routing.choose(candidates, zone=job.zone, requires=job.requires, agent=job.agent)
        if worker is None:
            return False
        self._assign(job, worker)
        return True

    def _assign(self, job: Job, worker: ConnectedWorker) -> None:
        if not self._may_send():  # the last gate before the wire: never a frame once fenced
            self.fenced += 1
            self._lost(job, "this manager no longer leads the cluster")
            return
        self._assignments += 1
        worker.last_assigned = self._assignments
        worker.jobs.add(job.job_id)
        self._leases[job.job_id] = _Lease(job=job, worker=worker)
        worker.peer.send(job)

    def _release(self, job_id: str) -> _Lease | None:
        lease = self._leases.pop(job_id, None)
        if lease is not None:
            lease.worker.jobs.discard(job_id)
        return lease

    def _fail_over(self, worker: ConnectedWorker, why: str) -> None:
        now = self._clock()
        for job_id in list(worker.jobs):
            lease = self._release(job_id)
            if lease is None or lease.job.deadline <= now:
                continue
            job = lease.job
            if job.once:
                self._lost(job, f"worker {worker.name} was lost while running it ({why})")
                continue
            if self._place(job, exclude=worker):
                logger.info(
                    "job %s (%s) moved from %s (%s)",
                    job.job_id,
                    job.describe(),
                    worker.name,
                    why,
                    extra={"action": "job_failed_over", "worker": worker.name},
                )
            else:
                self._lost(job, no_worker_reason(_pool_name(job)))

    # --- connection events (called by the SSH glue) ---------------------------------------

    def attach(self, worker: ConnectedWorker) -> None:
        self._workers.add(worker)

    def detach(self, worker: ConnectedWorker, why: str) -> None:
        if worker not in self._workers:
            return
        self._workers.discard(worker)
        if worker.hello is not None:
            logger.info(
                "worker %s disconnected: %s",
                worker.name,
                why,
                extra={"action": "worker_lost", "worker": worker.name},
            )
        self._fail_over(worker, why)
        self._expire_waiting(self._clock())

    def handle(self, worker: ConnectedWorker, message: protocol.Message) -> None:
        worker.last_seen_wall = time.time()
        worker.silent_ticks = 0
        if worker.hello is None:
            self._hello(worker, message)
        elif isinstance(message, Result):
            self._result(worker, message)
        elif isinstance(message, protocol.Heartbeat):
            self._heartbeat(worker, message)
        elif isinstance(message, protocol.Drain):
            worker.draining = True
            logger.info("worker %s is draining", worker.name, extra={"action": "worker_drain"})
        elif isinstance(message, protocol.Error):
            logger.warning("worker %s: %s: %s", worker.name, message.code, message.message)
        else:
            raise ProtocolError(f"a worker may not send {message.type}")

    def _heartbeat(self, worker: ConnectedWorker, beat: protocol.Heartbeat) -> None:
        before = worker.capacity
        worker.accepting, worker.reason, worker.offered = beat.accepting, beat.reason, beat.capacity
        worker.load = beat.load
        if worker.capacity != before:
            full = worker.capacity >= worker.concurrency
            logger.info(
                "worker %s %s",
                worker.name,
                f"takes its {worker.concurrency} slots again"
                if full
                else f"is under pressure ({beat.reason}): {worker.capacity} of "
                f"{worker.concurrency} slots",
                extra={"action": "worker_pressure", "worker": worker.name},
            )
        self._pump(worker)

    def _hello(self, worker: ConnectedWorker, message: protocol.Message) -> None:
        if not isinstance(message, protocol.Hello):
            raise ProtocolError(f"expected hello, got {message.type}")
        if message.protocol != protocol.PROTOCOL_VERSION:
            raise ProtocolError(
                f"protocol {message.protocol} not supported (this manager speaks "
                f"{protocol.PROTOCOL_VERSION})"
            )
        for other in [w for w in self._workers if w.name == worker.name and w is not worker]:
            other.peer.close()  # the same key again: a reconnect; the newest wins
            self.detach(other, "replaced by a new connection")
        worker.hello = message
        worker.peer.send(
            protocol.Welcome(
                name=worker.name,
                zones=sorted(worker.zones),
                labels=dict(worker.labels),
                agent_for=worker.agent_for,
                heartbeat_interval=self.heartbeat_interval,
            )
        )
        if set(message.zones) - worker.zones:
            logger.warning(
                "worker %s claims zones %s beyond its enrolment %s; ignored",
                worker.name,
                sorted(set(message.zones) - worker.zones),
                sorted(worker.zones),
                extra={"action": "worker_claim_ignored", "worker": worker.name},
            )
        logger.info(
            "worker %s connected for zones %s%s",
            worker.name,
            ", ".join(sorted(worker.zones)),
            "" if worker.agent_for is None else f" as the agent of {worker.agent_for}",
            extra={"action": "worker_connected", "worker": worker.name},
        )
        self._pump(worker)

    def _result(self, worker: ConnectedWorker, result: Result) -> None:
        lease = self._leases.get(result.job_id)
        if lease is None or lease.worker is not worker or lease.job.token != result.token:
            logger.debug(
                "ignoring result for job %s from %s: not leased to it (late or duplicate)",
                result.job_id,
                worker.name,
                extra={"action": "result_ignored", "worker": worker.name},
            )
            return
        self._release(result.job_id)
        try:
            self._on_result(worker.name, result)
        except Exception:
            logger.exception("on_result failed for job %s", result.job_id)
        self._pump(worker)

    # --- the monitor ----------------------------------------------------------------------

    async def _watch(self) -> None:
        """Every interval: expire leases, drop silent workers, close revoked keys."""
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            try:
                await self._tick()
            except WatchkeeperError as exc:  # the registry's store is down: try next time
                logger.warning("job server check failed: %s", exc.message)

    async def _tick(self) -> None:
        """Expire leases and waiting jobs; drop workers silent for `MISSED_HEARTBEATS` ticks.

        Silence is counted in the monitor's own ticks, not in seconds: when the event loop
        stalls (a loaded machine, a long garbage collection), the heartbeats that arrived
        meanwhile are read before the next tick, so a stall is never taken for a dead
        worker, while a worker that really went quiet is dropped after that many intervals.
        """
        now = self._clock()
        freed = set()
        for job_id in [j for j, lease in self._leases.items() if lease.job.deadline <= now]:
            lease = self._release(job_id)
            if lease is not None:
                freed.add(lease.worker)
        self._expire_waiting(now)
        for worker in freed:
            self._pump(worker)
        for worker in list(self._workers):
            if worker.silent_ticks >= MISSED_HEARTBEATS:
                worker.peer.abort()
                self.detach(worker, f"missed {MISSED_HEARTBEATS} heartbeats")
            worker.silent_ticks += 1
        for key in {w.enrolment.public_key for w in self._workers}:
            if await self.registry.lookup(key) is None:
                for worker in [w for w in self._workers if w.enrolment.public_key == key]:
                    self.revoke(worker.name)
