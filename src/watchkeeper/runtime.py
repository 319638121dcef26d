"""The manager process, and the composition root: the one module that wires it all.

    store ─ intake ─ sources (poller)
        └─ stages (telemetry, alarms, notifications, remediation) ─┐
        └─ job server ─ EngineRunner ─────────────────────────────┼─▶ ManagerPorts ─▶ web
        └─ embedded worker (``up``)                                 ┘

Nothing below imports this module: the manager's packages do not know the web, and the
web knows the manager only through its ports (`watchkeeper.web.ports`). Each part runs as
its own task; the first to fail stops the others so the process exits with the error
instead of running half-alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ipaddress
import logging
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import uvicorn

from watchkeeper import store
from watchkeeper.clock import utcnow
from watchkeeper.cluster.election import Election, NodeInfo
from watchkeeper.cluster.fence import TermFence
from watchkeeper.cluster.lease import LeaseSettings, Role
from watchkeeper.cluster.status import ClusterView
from watchkeeper.deploy.views import DeployView
from watchkeeper.document.diff import summary_text
from watchkeeper.document.normalize import CheckRecord, Snapshot
from watchkeeper.errors import DocumentError, StoreError, UsageError
from watchkeeper.infra.views import InfraView
from watchkeeper.latch import FailureLatch
from watchkeeper.logs import NOTICE
from watchkeeper.manager.demo import API_SERVICE, DEMO_PORT, DemoSource
from watchkeeper.manager.embedded import EMBEDDED_CONCURRENCY, EmbeddedWorker
from watchkeeper.manager.intake import ConfigIntake, IntakeOutcome
from watchkeeper.manager.ports import ManagerPorts
from watchkeeper.manager.runner import EngineRunner
from watchkeeper.manager.stages import Stages, StageSettings
from watchkeeper.notify.notification import Notification, NotificationKind
from watchkeeper.private import looser, private_dir
from watchkeeper.sources import Candidate, Poller, Source, SourceStatus, open_source
from watchkeeper.store.db import mask
from watchkeeper.store.fencing import FENCE
from watchkeeper.transport import keys
from watchkeeper.transport.registry import KeyRegistry, StoreKeyRegistry
from watchkeeper.transport.server import DEFAULT_PORT, JobServer
from watchkeeper.web.app import create_app
from watchkeeper.web.auth import TOKEN_FILE, load_or_create_token
from watchkeeper.web.ports import WebPorts
from watchkeeper.web.security import Security, ensure_first_admin
from watchkeeper.web.security.sessions import CookiePolicy
from watchkeeper.worker.executors import install_child_watcher

logger = logging.getLogger(__name__)

#: Seconds a stopping manager gives open HTTP requests before it closes them.
GRACEFUL_SHUTDOWN = 5
#: Seconds a stopping manager gives its parts (the web server's grace above included).
STOP_GRACE = 15
#: Seconds between a standby's reloads of the view its web serves.
STANDBY_REFRESH = 2.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ManagerSettings:
    """Everything the manager is told at start; each field is a CLI flag or variable."""

    source: str
    data_dir: Path
    database: str | None = None
    http_host: str = "127.0.0.1"
    http_port: int = 8470
    poll_interval: float = 30.0
    source_timeout: float = 10.0
    max_bytes: int = 64 * 1024 * 1024
    bearer_token: str | None = None
    #: The SSH job server; loopback by default: remote workers need ``--jobs 0.0.0.0:4730``.
    jobs_host: str = "127.0.0.1"
    jobs_port: int = DEFAULT_PORT
    #: Run one worker inside the process (``watchkeeper up``) and print state summaries.
    embedded_worker: bool = False
    #: Checks the embedded worker runs at once (``up --concurrency``).
    embedded_concurrency: int = EMBEDDED_CONCURRENCY
    #: Seconds a zone may have no worker before its checks go UNKNOWN.
    worker_grace: float = 60.0
    #: ``source`` is the bundled demo: its API check follows the bound port.
    demo: bool = False
    #: Telemetry retention, notification retries, remediation limits.
    stages: StageSettings = field(default_factory=StageSettings)
    #: PEM certificate (chain) and private key: HTTPS instead of HTTP when both are given.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: Active/standby on PostgreSQL (`watchkeeper.cluster`): this manager leads or stands by.
    ha: bool = False
    #: This manager's name in the cluster (default: the host name and HTTP port).
    node: str = ""
    #: How long a leader may go without renewing, and how often every node beats.
    lease: LeaseSettings = field(default_factory=LeaseSettings)

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None


def check_tls_files(cert: Path | None, key: Path | None) -> None:
    """Both or neither, each a readable PEM file that loads as a pair; `UsageError` naming
    the flag otherwise, before anything binds a port."""
    if cert is not None and key is None:
        raise UsageError("--tls-key: required with --tls-cert")
    if key is not None and cert is None:
        raise UsageError("--tls-cert: required with --tls-key")
    if cert is None or key is None:
        return
    for flag, path in (("--tls-cert", cert), ("--tls-key", key)):
        try:
            with path.open("rb") as handle:
                handle.read(1)
        except OSError as exc:
            raise UsageError(f"{flag}: cannot read {path}: {exc.strerror}") from exc
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        raise UsageError(
            f"--tls-cert/--tls-key: {cert} and {key} are not a PEM certificate and its "
            f"private key ({exc.reason or exc})"
        ) from exc


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_listener(host: str, port: int) -> socket.socket:
    """Bind the HTTP socket ourselves so a busy port is a clear error, not a server exit."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"--http: cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.listen(128)
    sock.setblocking(False)
    return sock


def check_ha(settings: ManagerSettings) -> None:
    """A cluster needs a database every manager shares and that arbitrates: PostgreSQL."""
    url = settings.database or ""
    if not url.startswith(("postgres", "postgresql")):
        raise UsageError(
            "--ha: needs a PostgreSQL --database shared by the managers of the cluster "
            f"(SQLite is single-node), got {mask(url) if url else 'none'}"
        )
    if settings.embedded_worker:
        raise UsageError("--ha: not with an embedded worker (`up`); run `manager --ha`")


def _ha_session(settings: ManagerSettings) -> dict[str, str] | None:
    """The server ends a transaction left open for a lease (a frozen leader's), so it
    cannot hold the term row against the next leader's bump for longer than that."""
    if not settings.ha:
        return None
    return {"idle_in_transaction_session_timeout": str(int(settings.lease.lease * 1000))}


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside the manager: signals belong to the process, readiness is an event."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()


class Manager:
    """Owns the store, the intake, the source poller and the HTTP server of one manager."""

    def __init__(
        self,
        settings: ManagerSettings,
        *,
        clock: Callable[[], datetime] = utcnow,
        on_event: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._on_event = on_event or (lambda message: None)
        if settings.ha:
            check_ha(settings)
        self.db = (
            store.Database(settings.database, pg_settings=_ha_session(settings))
            if settings.database
            else store.Database.for_data_dir(settings.data_dir)
        )
        self.intake = ConfigIntake(self.db, clock=clock)
        self.token = ""
        self.server: _EmbeddedServer | None = None
        self._stopping = asyncio.Event()
        self.port = settings.http_port
        self.jobs_port = settings.jobs_port
        self.runner: EngineRunner | None = None
        self.embedded: EmbeddedWorker | None = None
        self.stages = Stages(self.db, settings.stages)
        #: Set on the first start (no user yet): the one-time password of user ``admin``.
        self.first_admin_password: str | None = None
        #: With ``ha``: the election, the leader work of the current term, and what the
        #: web shows of the cluster.
        self.election: Election | None = None
        self._leading: asyncio.Task[None] | None = None
        self._ports: ManagerPorts | None = None
        self._views: tuple[InfraView, DeployView] | None = None
        self._source_obj: Source | None = None
        self._abdication: asyncio.Task[None] | None = None
        self.cluster = ClusterView(
            self.db, node=self.node_name, lease=settings.lease, ha=settings.ha
        )

    @property
    def token_path(self) -> Path:
        return self.settings.data_dir / TOKEN_FILE

    @property
    def url(self) -> str:
        host = self.settings.http_host
        shown = f"[{host}]" if ":" in host else host
        scheme = "https" if self.settings.tls else "http"
        return f"{scheme}://{shown}:{self.port}"

    async def run(self, started: Callable[[], Awaitable[None]] | None = None) -> None:
        """Run until cancelled or until a part fails."""
        check_tls_files(self.settings.tls_cert, self.settings.tls_key)
        data_dir = private_dir(self.settings.data_dir)
        exposed = looser([data_dir, *sorted(data_dir.iterdir())])
        if exposed:
            logger.warning(
                "readable by other users: %s; they hold the database and keys: "
                "chmod 700 the directory and 600 its files",
                ", ".join(exposed),
                extra={"action": "data_dir_exposed"},
            )
        # Both ports before anything is created: a busy one must not cost the first admin
        # its one-time password (it is created, and printed, only once the manager serves).
        listener = bind_listener(self.settings.http_host, self.settings.http_port)
        self.port = listener.getsockname()[1]
        try:
            await self.db.migrate()
            self.token = load_or_create_token(self.settings.data_dir)
            source = self._source()
        except BaseException:
            listener.close()
            raise
        await self._serve(source, listener, started)

    def _source(self) -> Source:
        source = open_source(
            self.settings.source,
            timeout=self.settings.source_timeout,
            max_bytes=self.settings.max_bytes,
            bearer_token=self.settings.bearer_token,
        )
        if not self.settings.demo:
            return source
        note = (
            "" if self.port == DEMO_PORT else f"; its {API_SERVICE} check follows port {self.port}"
        )
        self._on_event(f"demo: watching {source.name}{note}")
        return DemoSource(source, self.port)

    async def _serve(
        self,
        source: Source,
        listener: socket.socket,
        started: Callable[[], Awaitable[None]] | None,
    ) -> None:
        """The poller, engine, HTTP server and embedded worker, until stopped or one fails.

        A clustered manager (``ha``) serves the web at once, as a standby, and runs the
        election; the engine, the job server, the stages and the poller run only while it
        leads (`_lead`), in a task of their own.
        """
        self._source_obj = source
        try:
            runner = self._build_engine()
            if self.settings.ha:
                await self.intake.start()
                await runner.load_view()
            else:
                await self._start_engine(runner)
            self.first_admin_password = await ensure_first_admin(self.db)
        except BaseException:
            listener.close()
            await source.aclose()
            if self.runner is not None:
                await self.runner.server.aclose()
            await self.db.aclose()
            raise
        # Over TLS every request is https: the session cookie is Secure (it would be anyway,
        # by the request's scheme; saying so keeps it Secure behind any misreported scheme).
        cookie = CookiePolicy(secure=True) if self.settings.tls else None
        security = Security(self.db, manager_token=self.token, cookie=cookie)
        ports = self._ports = ManagerPorts(runner, self.stages)
        infra_view, deploy_view = InfraView(self.stages.infra), DeployView(self.stages.deploy)
        self._views = (infra_view, deploy_view)
        app = create_app(
            self.db,
            self.intake,
            self.token,
            ports=WebPorts(read=ports, ops=ports, infra=infra_view, deploy=deploy_view),
            security=security,
            cluster=self.cluster,
        )
        tls = self.settings
        config = uvicorn.Config(
            app,
            log_level="warning",
            # uvicorn's lines go to the root handler, in the one format (`watchkeeper.logs`).
            log_config=None,
            lifespan="off",
            # A stop must not wait on a client that keeps a request open (a live page).
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
            ssl_certfile=str(tls.tls_cert) if tls.tls_cert is not None else None,
            ssl_keyfile=str(tls.tls_key) if tls.tls_key is not None else None,
        )
        self.server = _EmbeddedServer(config)
        if not is_loopback(self.settings.http_host) and not self.settings.tls:
            logger.warning(
                "HTTP listens on %s, beyond this machine; put TLS in front of it",
                self.settings.http_host,
                extra={"action": "http_exposed"},
            )
        tasks = {
            asyncio.create_task(security.run(), name="sessions"),
            asyncio.create_task(self._follow(), name="config-follower"),
            asyncio.create_task(self.server.serve([listener]), name="http"),
        }
        if self.settings.ha:
            tasks.add(asyncio.create_task(self._elect(), name="election"))
            tasks.add(asyncio.create_task(self._stand_by(), name="standby-view"))
        else:
            tasks.update(asyncio.create_task(job, name=name) for name, job in self._leader_jobs())
        worker = None
        if self.embedded is not None:
            install_child_watcher()
            worker = self.embedded.connect(runner.server, self._host_key)
            tasks.add(asyncio.create_task(worker.run(), name="embedded-worker"))
        stopping = asyncio.create_task(self._stopping.wait(), name="stop")
        try:
            ready = asyncio.create_task(self.server.ready.wait())
            await asyncio.wait({ready, *tasks}, return_when=asyncio.FIRST_COMPLETED)
            if ready.done() and started is not None:
                await started()
            ready.cancel()
            done, _ = await asyncio.wait({stopping, *tasks}, return_when=asyncio.FIRST_COMPLETED)
            for task in done - {stopping}:
                task.result()  # a part that stopped on its own: raise its error
        finally:
            self.server.should_exit = True
            if worker is not None:
                worker.stop()
            # A leader's last batch is saved while it still holds the lock: its loops stop
            # before the election lets the lock go.
            await self._stop_leading()
            for task in tasks:
                if task.get_name() != "http":
                    task.cancel()
            stopping.cancel()
            # The web server and the embedded worker were asked to stop, the rest
            # cancelled: whatever has not ended after the grace is named and cancelled, so
            # a stop never waits without bound on one part.
            _, late = await asyncio.wait({*tasks, stopping}, timeout=STOP_GRACE)
            for task in late:
                logger.warning(
                    "%s did not stop within %ss: cancelled", task.get_name(), STOP_GRACE,
                    extra={"action": "stop_late"},
                )  # fmt: skip
                task.cancel()
            await asyncio.gather(*tasks, stopping, return_exceptions=True)
            listener.close()
            if self.embedded is not None:
                await self.embedded.aclose()
            await source.aclose()
            await self.db.aclose()

    def _leader_jobs(self) -> list[tuple[str, Coroutine[Any, Any, None]]]:
        """The loops that only a leader runs: the stages, the engine and the poller."""
        assert self.runner is not None and self._source_obj is not None
        poller = Poller(
            self._source_obj,
            self._take,
            interval=self.settings.poll_interval,
            clock=self._clock,
            on_status=self._record_status,
        )
        return [
            *self.stages.tasks().items(),
            ("engine", self.runner.run()),
            ("source-poller", poller.run()),
        ]

    def _build_engine(self) -> EngineRunner:
        """Fresh stages and a fresh engine runner with its job server (not listening yet)."""
        data_dir = self.settings.data_dir
        self._host_key = keys.load_or_create_host_key(data_dir)
        registry: KeyRegistry = StoreKeyRegistry(self.db)
        if self.settings.embedded_worker:
            if self.embedded is None:
                self.embedded = EmbeddedWorker(
                    data_dir, registry, concurrency=self.settings.embedded_concurrency
                )
            registry = self.embedded.registry
        election = self.election

        def server(runner: EngineRunner) -> JobServer:
            return JobServer(
                registry=registry,
                host_key=self._host_key,
                on_result=runner.result_received,
                on_lost=runner.job_lost,
                host=self.settings.jobs_host,
                port=self.settings.jobs_port,
                may_send=election.may_act if election is not None else (lambda: True),
            )

        if self.runner is not None:  # a clustered manager's new term or view: new stages
            self.stages = Stages(self.db, self.settings.stages)
        stages = self.stages
        stages.deploy.fingerprint = keys.fingerprint(self._host_key)  # the agents' pin
        runner = self.runner = EngineRunner(
            self.db,
            server,
            worker_grace=self.settings.worker_grace,
            on_summary=self._on_event if self.settings.embedded_worker else None,
            on_zones=self.embedded.set_zones if self.embedded is not None else None,
            downstream=stages.downstream,
            interpret=stages.alarms.interpret,
        )
        stages.bind(runner)
        if self._ports is not None:
            self._ports.bind(runner, stages)
        if self._views is not None:
            self._views[0].service, self._views[1].service = stages.infra, stages.deploy

        def imported(outcome: IntakeOutcome, snapshot: Snapshot) -> None:
            stages.on_import(snapshot.objects)
            runner.config_imported(outcome, snapshot)

        # A standby's view runs nothing: it is rebuilt from the store (`_stand_by`).
        self.intake.on_import = None if self.settings.ha and not self._leads() else imported
        return runner

    async def _start_engine(self, runner: EngineRunner) -> None:
        """Start the stages, the intake and the runner: it loads the running checks and
        their saved states and its job server listens."""
        await self.stages.start()
        await self.intake.start()
        try:
            await runner.start()
        except OSError as exc:
            where = f"{self.settings.jobs_host}:{self.settings.jobs_port}"
            raise UsageError(f"--jobs: cannot listen on {where}: {exc.strerror}") from exc
        self.jobs_port = runner.server.port

    # --- the cluster (``ha``) ---------------------------------------------------------------

    @property
    def node_name(self) -> str:
        return self.settings.node or f"{socket.gethostname()}:{self.settings.http_port}"

    def _leads(self) -> bool:
        return self.election is not None and self.election.role is Role.LEADER

    async def _elect(self) -> None:
        jobs = f"{self.settings.jobs_host}:{self.settings.jobs_port}"
        assert self.settings.database is not None
        self.election = Election(
            self.settings.database,
            NodeInfo(node=self.node_name, url=self.url, jobs=jobs),
            self.settings.lease,
            on_lead=self._on_lead,
            on_step_down=self._on_step_down,
        )
        self.cluster.election = self.election
        await self.election.run()

    async def _on_lead(self, term: int, previous: str) -> None:
        """Won the lock at ``term``: start the leader work in its own task, fenced."""
        assert self.election is not None
        fence = TermFence(term, self.election.may_act)
        context = contextvars.copy_context()
        context.run(FENCE.set, fence)
        self._leading = asyncio.create_task(
            self._lead(term, previous), name=f"leader-term-{term}", context=context
        )

    async def _lead(self, term: int, previous: str) -> None:
        """Take over: fresh stages and engine loaded from the store (what the last leader
        saved, jobs it left dispatched marked for verification), then the job server
        listens and the leader loops run until cancelled by a step-down."""
        started = time.monotonic()
        try:
            runner = self._build_engine()
            await self._start_engine(runner)
            self._on_event(
                f"leading the cluster (term {term}); took over in "
                f"{time.monotonic() - started:.2f} s"
            )
            self._announce(term, previous)
            jobs = [asyncio.create_task(job, name=name) for name, job in self._leader_jobs()]
            try:
                done, _ = await asyncio.wait(jobs, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()
            finally:
                for task in jobs:
                    task.cancel()
                await asyncio.gather(*jobs, return_exceptions=True)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.exception("the leader work of term %d failed", term)
            election = self.election
            if election is not None:  # let another node lead; not from inside this task
                why = f"leader work failed: {exc}"
                self._abdication = asyncio.create_task(election.step_down(why))
        finally:
            if self.runner is not None:
                await self.runner.server.aclose()

    def _announce(self, term: int, previous: str) -> None:
        """A takeover is in the term history (the audit); it is also logged and notified."""
        if not previous or previous == self.node_name:
            return
        output = f"{self.node_name} took over from {previous} at term {term}"
        logger.log(NOTICE, output, extra={"action": "cluster_takeover", "term": term})
        channels = tuple(self.stages.notifier.channels)
        if channels:
            self.stages.notifier.notify(
                Notification(
                    kind=NotificationKind.CLUSTER, key="cluster", host=self.node_name,
                    service=None, state="LEADER", output=output, at=time.time(),
                    channels=channels, details={"term": term, "previous": previous},
                )
            )  # fmt: skip

    async def _on_step_down(self, why: str) -> None:
        """Stop every leader loop and close the job server (workers go to the next manager)
        before the election lets the lock go; then serve a standby's view."""
        await self._stop_leading()
        self._on_event(f"standing by: {why}")
        with contextlib.suppress(StoreError):
            await self._build_engine().load_view()

    async def _stop_leading(self) -> None:
        task, self._leading = self._leading, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _stand_by(self) -> None:
        """While standing by, keep the view the web serves as fresh as the store, and the
        intake's idea of the running version current (a push to the standby diffs from it).

        The checks are read again only when the version changed, the statuses every time;
        the pause is at least ten times what the last refresh took, so a large view costs a
        standby at most a tenth of a core (11,000 checks: about 0.5 s to load).
        """
        latch = FailureLatch(
            logger,
            "cannot refresh the standby's view: %s",
            "refreshing the standby's view recovered",
            action="standby_view",
        )
        records: list[CheckRecord] | None = None
        #: The version ``records`` are of.
        loaded: int | None = None
        pause = STANDBY_REFRESH
        while True:
            await asyncio.sleep(pause)
            if self._leads() or self._leading is not None:
                records = None
                continue
            started = time.monotonic()
            try:
                await self.cluster.refresh()
                await self.intake.follow()
                version = self.intake.version_id  # a push to this standby moves it too
                if version != loaded:
                    records = None
                runner = self._build_engine()
                records = await runner.load_view(records)
                loaded = version
                await self.stages.alarms.start(quiet=True)
                await self.stages.configure_from_store()
            except StoreError as exc:
                records = None
                latch.failed(exc.message)
            else:
                latch.succeeded()
            pause = max(STANDBY_REFRESH, 10 * (time.monotonic() - started))

    async def _follow(self) -> None:
        """Every poll interval (every beat when clustered): run the store's current version
        if another process (``watchkeeper import``, a push to the standby) made it."""
        latch = FailureLatch(
            logger,
            "cannot read the current configuration version: %s",
            "reading the current configuration version recovered",
            action="config_follow",
        )
        interval = (
            self.settings.lease.heartbeat if self.settings.ha else self.settings.poll_interval
        )
        while True:
            await asyncio.sleep(interval)
            if self.settings.ha and not self._leads():
                continue  # the standby's view reads the store anyway
            try:
                await self.intake.follow()
            except StoreError as exc:
                latch.failed(exc.message)
            else:
                latch.succeeded()

    def stop(self) -> None:
        """Ask `run` to finish: the HTTP server drains, the poller stops."""
        self._stopping.set()

    async def _take(self, candidate: Candidate) -> None:
        outcome = await self.intake.submit(candidate.body, source=candidate.source)
        if not outcome.accepted:
            first = outcome.errors[0] if outcome.errors else "unreadable"
            self._on_event(
                f"candidate from {candidate.source} rejected ({len(outcome.errors)} "
                f"error(s), first: {first}); running configuration unchanged"
            )
            raise DocumentError(f"rejected: {len(outcome.errors)} error(s), first: {first}")
        if outcome.created and outcome.diff is not None:
            summary = outcome.diff.summary()
            self._on_event(
                f"imported configuration version {outcome.version_id}: {summary_text(summary)}"
            )

    async def _record_status(self, status: SourceStatus) -> None:
        try:
            await store.record_source_status(
                self.db,
                name=status.name,
                ok=status.ok,
                last_attempt=status.last_attempt,
                last_success=status.last_success,
                last_error=status.last_error,
                consecutive_failures=status.consecutive_failures,
            )
        except StoreError as exc:  # the poller goes on; the status is also in memory
            logger.warning(
                "cannot record the status of source %s: %s",
                status.name,
                exc,
                extra={"action": "source_status_unrecorded"},
            )
