"""The manager's side of the web's ports (`watchkeeper.web.ports`): one adapter over the
engine runner and the stages, so the web never reaches into either."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace

from watchkeeper.alarms.values import Alarm, AlarmEvent, Downtime
from watchkeeper.document.normalize import CheckRecord
from watchkeeper.engine import CheckStatus, HostStatus, ZoneStatus
from watchkeeper.jobs.queue import JobQueue
from watchkeeper.manager.runner import EngineRunner
from watchkeeper.manager.stages import Stages
from watchkeeper.remediation.records import RemediationJob
from watchkeeper.store.bulk import Listed
from watchkeeper.telemetry.recorder import LatestMetric
from watchkeeper.telemetry.rollup import Retention
from watchkeeper.transport.workers import WorkerInfo


class ManagerPorts:
    """`ReadModel` and `Operations` of one manager: its runner and its stages."""

    def __init__(self, runner: EngineRunner, stages: Stages) -> None:
        self._runner = runner
        self._stages = stages

    def bind(self, runner: EngineRunner, stages: Stages) -> None:
        """Serve another runner and its stages: a clustered manager's new term or standby
        view replaces them while the web keeps these ports."""
        self._runner = runner
        self._stages = stages

    # --- ReadModel: the engine ----------------------------------------------------------

    def checks(self) -> Iterator[tuple[CheckRecord, CheckStatus]]:
        # Every page walks this for 10,000 checks: one bound-method call per check, and a
        # KeyError for the rare key the scheduler dropped, instead of a test and a lookup.
        record = self._runner.engine.scheduler.record
        for key, status in self._runner.engine.statuses.items():
            try:
                found = record(key)
            except KeyError:
                continue
            yield (found if found.spec.get("address") else self._addressed(found)), status

    def check(self, key: str) -> tuple[CheckRecord, CheckStatus] | None:
        engine = self._runner.engine
        status = engine.statuses.get(key)
        if status is None or key not in engine.scheduler:
            return None
        found = engine.scheduler.record(key)
        return (found if found.spec.get("address") else self._addressed(found)), status

    def _addressed(self, record: CheckRecord) -> CheckRecord:
        """A slot host's check with its machine's address (the document has none for it),
        so every page, search and API answer shows where the check runs."""
        address = self._stages.infra.slot_address(record.host)
        if not address:
            return record
        return replace(record, spec={**record.spec, "address": address})

    def check_count(self) -> int:
        return len(self._runner.engine.statuses)

    def next_due(self, key: str) -> float | None:
        return self._runner.engine.scheduler.next_due(key)

    def host_statuses(self) -> Mapping[str, HostStatus]:
        return self._runner.engine.hosts

    @property
    def zones(self) -> frozenset[str]:
        return self._runner.zones

    def zone_statuses(self) -> Mapping[str, ZoneStatus]:
        return self._runner.engine.zones

    def workers(self) -> list[WorkerInfo]:
        return self._runner.server.workers()

    # --- ReadModel: alarms --------------------------------------------------------------

    def open_alarms(self) -> list[Alarm]:
        return self._stages.alarms.book.alarms(open_only=True)

    def active_downtimes(self, now: float) -> list[Downtime]:
        return self._stages.alarms.book.downtimes(now)

    def flapping(self, key: str) -> bool:
        return self._stages.alarms.book.flapping(key) is not None

    def silenced(self, key: str, now: float) -> str | None:
        return self._stages.alarms.book.silenced(key, now)

    async def list_alarms(
        self,
        *,
        open_only: bool = True,
        key: str | None = None,
        host: str | None = None,
        limit: int = 100,
        before_id: int | None = None,
    ) -> list[Alarm]:
        return await self._stages.alarms.list_alarms(
            open_only=open_only, key=key, host=host, limit=limit, before_id=before_id
        )

    async def page_alarms(
        self,
        *,
        open_only: bool = True,
        key: str | None = None,
        host: str | None = None,
        limit: int = 100,
        offset: int = 0,
        before_id: int | None = None,
    ) -> Listed[Alarm]:
        return await self._stages.alarms.page_alarms(
            open_only=open_only, key=key, host=host, limit=limit, offset=offset,
            before_id=before_id,
        )  # fmt: skip

    async def alarm_events(self, alarm_id: int) -> list[AlarmEvent]:
        return await self._stages.alarms.alarm_events(alarm_id)

    async def list_downtimes(self, *, include_past: bool = False) -> list[Downtime]:
        return await self._stages.alarms.list_downtimes(include_past=include_past)

    # --- ReadModel: telemetry and the job queue -----------------------------------------

    def latest_metrics(self) -> list[LatestMetric]:
        return self._stages.telemetry.latest()

    @property
    def retention(self) -> Retention:
        return self._stages.settings.telemetry.retention

    @property
    def remediation_queue(self) -> JobQueue:
        return self._stages.remediation.queue

    # --- Operations ---------------------------------------------------------------------

    def check_now(self, key: str) -> bool:
        return self._runner.check_now(key)

    async def acknowledge(
        self, key: str, author: str, comment: str, sticky: bool = True, expires: float | None = None
    ) -> list[Alarm]:
        return await self._stages.alarms.acknowledge(
            key, author, comment, sticky=sticky, expires=expires
        )

    async def unacknowledge(self, key: str) -> list[Alarm]:
        return await self._stages.alarms.unacknowledge(key)

    async def schedule_downtime(
        self, host: str, service: str | None, start: float, end: float, author: str, comment: str
    ) -> Downtime:
        return await self._stages.alarms.schedule_downtime(
            host, service, start, end, author, comment
        )

    async def cancel_downtime(self, downtime_id: int) -> Downtime:
        return await self._stages.alarms.cancel_downtime(downtime_id)

    async def run_pending(self, job_id: int, author: str) -> RemediationJob:
        return await self._stages.remediation.run_pending(job_id, author)

    async def skip_pending(self, job_id: int, author: str, reason: str = "") -> RemediationJob:
        return await self._stages.remediation.skip_pending(job_id, author, reason)
