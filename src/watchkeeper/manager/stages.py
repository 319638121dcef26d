"""The stages after the engine, built, configured and run together by the manager.

    EngineRunner ─interpret─▶ AlarmService.interpret (the document's thresholds)
                 ─infra:NAME, deploy:HOST─▶ InfraService, DeployService (their own loops)
                 ─observe──▶ TelemetryRecorder       (series, rollups, /metrics)
                 ─observe──▶ AlarmService ─notify──▶ Notifier ─▶ webhook, email, command
                 ─observe──▶ RemediationService ─submit_action─▶ JobServer ─▶ a worker
                                   ▲ silenced? (AlarmService)   ─notify──▶ Notifier

Telemetry comes first so a result's points are queued before anything slower looks at it;
alarms before remediation, so a problem's alarm exists when its remediation is decided.
The document's channels, rules and actions reach the stages after every import
(`on_import`) and at start (`configure_from_store`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from watchkeeper import store
from watchkeeper.alarms.service import AlarmService
from watchkeeper.alarms.thresholds import MetricSignal
from watchkeeper.deploy.service import DeployService, DeploySettings
from watchkeeper.document.normalize import ObjectRecord
from watchkeeper.engine.observed import Downstream
from watchkeeper.errors import StoreError, WatchkeeperError
from watchkeeper.infra.service import OBSERVE_QUEUE, InfraService, InfraSettings
from watchkeeper.manager.runner import EngineRunner
from watchkeeper.notify import repository as delivery_store
from watchkeeper.notify.notifier import Notifier, NotifierSettings
from watchkeeper.notify.repository import DELIVERY_RETENTION
from watchkeeper.remediation.service import RemediationService, RemediationSettings
from watchkeeper.store.checks import HISTORY_RETENTION
from watchkeeper.store.jobs import SqlQueueConnector
from watchkeeper.telemetry.recorder import TelemetryRecorder, TelemetrySettings

#: The document sections the stages are configured from.
SECTIONS = (
    "notifications",
    "remediations",
    "actions",
    "platforms",
    "infrastructure",
    "deployments",
    "hosts",
)
#: How long a slot host about to be destroyed is in downtime (drain before destroy).
DRAIN_DOWNTIME = 3600.0
#: How often the logs that grow without bound are pruned.
HOUSEKEEPING_INTERVAL = 3600.0

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Retention:
    """How long the growing logs are kept (telemetry has its own tiers and retention)."""

    state_history: timedelta = HISTORY_RETENTION
    deliveries: timedelta = DELIVERY_RETENTION
    job_audit: timedelta = timedelta(days=400)
    #: Finished infrastructure observations (a job per platform per poll) and their audit.
    observations: timedelta = timedelta(days=1)
    #: Configuration versions: the last this many are kept, and every one younger than
    #: `versions_for`; the current one, and any a running object comes from, always.
    versions_kept: int = 100
    versions_for: timedelta = timedelta(days=90)


@dataclass(frozen=True, slots=True, kw_only=True)
class StageSettings:
    """The manager's settings for the stages (CLI flags); the document sets the rest."""

    telemetry: TelemetrySettings = field(default_factory=TelemetrySettings)
    notifier: NotifierSettings = field(default_factory=NotifierSettings)
    remediation: RemediationSettings = field(default_factory=RemediationSettings)
    infra: InfraSettings = field(default_factory=InfraSettings)
    deploy: DeploySettings = field(default_factory=DeploySettings)
    retention: Retention = field(default_factory=Retention)


class Stages:
    """Telemetry, alarms, notifications and remediation of one manager."""

    def __init__(
        self,
        db: store.Database,
        settings: StageSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings or StageSettings()
        self.notifier = Notifier(db, settings=self.settings.notifier, clock=clock)
        self.telemetry = TelemetryRecorder(db, self.settings.telemetry, clock=clock)
        self.alarms = AlarmService(
            db, notify=self.notifier.notify, clock=clock, on_metric_signal=self._metric
        )
        self._runner: EngineRunner | None = None
        self.remediation = RemediationService(
            db,
            None,  # attached to the runner in `bind`: the runner is built with the stages
            self.notifier.notify,
            silenced=self.alarms.book.silenced,
            settings=self.settings.remediation,
            clock=clock,
        )
        self.infra = InfraService(
            db, SqlQueueConnector(db), settings=self.settings.infra, clock=clock, drain=self._drain
        )
        self.deploy = DeployService(db, settings=self.settings.deploy, clock=clock)
        self._db = db
        self._clock = clock

    @property
    def downstream(self) -> list[Downstream]:
        return [self.telemetry, self.alarms, self.remediation]

    def bind(self, runner: EngineRunner) -> None:
        """Give remediation and infrastructure the runner's job server and its check now;
        the runner asks infrastructure for slot addresses and the ``infra`` checks."""
        self.remediation.attach(runner)
        self.infra.attach(runner)
        runner.local_checks["infra"] = self.infra.check_outcome
        self.deploy.attach(runner)
        runner.local_checks["deploy"] = self.deploy.check_outcome
        runner.slot_address = self.infra.slot_address
        self._runner = runner

    async def start(self) -> None:
        """Configure from the running document and restore open alarms; before the runner."""
        await self.infra.start()
        await self.deploy.start()
        self.remediation.owner = self.infra.owner
        if self._runner is not None:
            self._runner.owner = self.infra.owner
        await self.configure_from_store()
        await self.alarms.start()

    def tasks(self) -> dict[str, Coroutine[Any, Any, None]]:
        """The stages' background loops, by task name; cancel them to stop (each flushes)."""
        return {
            "telemetry": self.telemetry.run(),
            "alarms": self.alarms.run(),
            "remediation": self.remediation.run(),
            "infrastructure": self.infra.run(),
            "deployments": self.deploy.run(),
            "notifier": self.notifier.run(),
            "housekeeping": self.housekeeping(),
        }

    async def housekeeping(self, interval: float = HOUSEKEEPING_INTERVAL) -> None:
        """Prune the state history, the delivery log, the job audit, finished observations
        and old configuration versions, hourly."""
        while True:
            try:
                await self.prune(self._clock())
            except StoreError as exc:  # the store is down: the next round catches up
                logger.warning("cannot prune old records: %s", exc.message)
            await asyncio.sleep(interval)

    async def prune(self, now: float) -> dict[str, int]:
        """Delete what is older than its retention; returns how many rows of each went."""
        retention = self.settings.retention

        def before(age: timedelta) -> datetime:
            return datetime.fromtimestamp(now, UTC) - age

        pruned = {
            "state_history": await store.prune_state_history(
                self._db, older_than=before(retention.state_history)
            ),
            "deliveries": await delivery_store.prune_deliveries(
                self._db, older_than=before(retention.deliveries)
            ),
            "job_audit": await SqlQueueConnector(self._db).prune_audit(
                before=before(retention.job_audit).timestamp()
            ),
            "observations": await SqlQueueConnector(self._db).prune_jobs(
                OBSERVE_QUEUE, before=before(retention.observations).timestamp()
            ),
            "config_versions": await store.prune_versions(
                self._db,
                keep_last=retention.versions_kept,
                older_than=before(retention.versions_for),
            ),
        }
        if any(pruned.values()):
            logger.info("pruned old records: %s", pruned, extra={"action": "pruned"})
        return pruned

    async def configure_from_store(self) -> None:
        async with self._db.session() as session:
            objects = {kind: await store.list_objects(session, kind) for kind in SECTIONS}
        self._configure(objects)

    def on_import(self, objects: Mapping[str, Mapping[str, ObjectRecord]]) -> None:
        """A new configuration was imported: its channels, rules and actions apply now."""
        self._configure({kind: list(objects.get(kind, {}).values()) for kind in SECTIONS})

    def _configure(self, objects: Mapping[str, list[ObjectRecord]]) -> None:
        self.notifier.configure(objects["notifications"])
        self.remediation.configure(
            objects["remediations"], objects["actions"], objects["platforms"]
        )
        platforms = [record.spec for record in objects["platforms"]]
        self.infra.configure(platforms, [record.spec for record in objects["infrastructure"]])
        self.deploy.configure(
            [record.spec for record in objects["deployments"]],
            [record.spec for record in objects["hosts"]],
        )
        if self._runner is not None:
            self._runner.platforms = {str(p["name"]): p for p in platforms}

    async def _drain(self, host: str, reason: str, now: float) -> None:
        """Before a slot's machine is destroyed: a downtime silences its host's checks."""
        # A host that left the document already has nothing to silence.
        with contextlib.suppress(WatchkeeperError):
            await self.alarms.schedule_downtime(
                host, None, now, now + DRAIN_DOWNTIME, "infrastructure", reason[:500]
            )

    def _metric(self, signal: MetricSignal, now: float) -> None:
        self.remediation.metric_alarm(signal.key, signal.metric, signal.state.name, now)
