"""The telemetry stage after the engine: every metric of every result becomes a stored point.

    EngineRunner ──observe(Observed)──▶ queue (bounded, in memory) + latest value per metric
                                          │  run(): every flush_interval, or sooner when
                                          ▼         flush_points are waiting
                                   telemetry.repository.write_points (one transaction per batch)
                                   every maintenance_interval: rollup + retention

`observe` runs inside the engine loop, so it only appends to a deque. The slow work is in
`run`, which the manager starts beside the runner and cancels at stop (it writes what is
left then). While the store fails, points wait; past ``max_queued_points`` the oldest are
dropped, with one warning per outage, as the runner does for state history.

The latest value of each (check, metric) is kept in memory for the Prometheus endpoint
(`latest`), so scraping never touches the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from watchkeeper.engine.observed import Observed
from watchkeeper.errors import StoreError
from watchkeeper.latch import FailureLatch
from watchkeeper.store.db import Database
from watchkeeper.telemetry import repository as telemetry_store
from watchkeeper.telemetry.rollup import Retention

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class TelemetrySettings:
    """How long each tier is kept and how often the recorder writes; all in seconds."""

    raw_retention: float = 48 * 3600.0
    five_minute_retention: float = 30 * 86400.0
    hourly_retention: float = 400 * 86400.0
    #: Queued points are written at least this often.
    flush_interval: float = 1.0
    #: ... and as soon as this many wait; also the most written per transaction.
    flush_points: int = 20_000
    #: How often closed buckets are rolled up and old data deleted.
    maintenance_interval: float = 60.0
    #: A 5-minute bucket is rolled up this long after it ends (room for late points).
    rollup_delay: float = 60.0
    #: Points that may wait while the store fails; the oldest are dropped past it.
    max_queued_points: int = 1_000_000

    def __post_init__(self) -> None:
        _ = self.retention  # validates the retentions
        if min(self.flush_interval, self.maintenance_interval, self.rollup_delay) < 0:
            raise ValueError("intervals must not be negative")
        if self.flush_points < 1 or self.max_queued_points < 1:
            raise ValueError("flush_points and max_queued_points must be positive")

    @property
    def retention(self) -> Retention:
        return Retention(
            raw=self.raw_retention,
            five_minute=self.five_minute_retention,
            hourly=self.hourly_retention,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class LatestMetric:
    """The last value a check reported for a metric, for ``/metrics``."""

    check_key: str
    host: str
    #: None for a host's own check.
    service: str | None
    zone: str
    metric: str
    uom: str
    value: float
    #: Epoch seconds of the result.
    at: float


class TelemetryRecorder:
    """A `Downstream` that stores the metrics of results; `run` it until cancelled."""

    def __init__(
        self,
        db: Database,
        settings: TelemetrySettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.settings = settings or TelemetrySettings()
        self._clock = clock
        self._queue: deque[telemetry_store.PointIn] = deque()
        self._ids: dict[telemetry_store.SeriesKey, int] = {}
        self._latest: dict[tuple[str, str], LatestMetric] = {}
        self._wake = asyncio.Event()
        self._dropped = 0
        self._latch = FailureLatch(
            logger,
            "cannot write telemetry, will retry: %s",
            "writing telemetry recovered",
            action="telemetry_store",
        )
        self._last_maintenance: float | None = None

    # --- the engine loop's side (cheap, synchronous) ------------------------------------------

    def observe(self, observed: Observed, now: float) -> None:
        """Queue the metrics of this turn's results; forget the checks an import removed."""
        for result in observed.results:
            at = telemetry_store.to_ms(result.at)
            record = result.record
            for metric in result.outcome.metrics:
                if not math.isfinite(metric.value):
                    continue
                self._queue.append(((result.key, metric.label, metric.uom), at, metric.value))
                self._latest[result.key, metric.label] = LatestMetric(
                    check_key=result.key,
                    host=record.host,
                    service=record.service,
                    zone=record.zone,
                    metric=metric.label,
                    uom=metric.uom,
                    value=metric.value,
                    at=result.at,
                )
        if observed.removed:
            gone = set(observed.removed)
            self._latest = {k: v for k, v in self._latest.items() if k[0] not in gone}
        if observed.checks is not None:
            running = observed.checks
            self._latest = {k: v for k, v in self._latest.items() if k[0] in running}
        self._bound()
        if len(self._queue) >= self.settings.flush_points:
            self._wake.set()

    def latest(self) -> list[LatestMetric]:
        """The latest value of every metric of the running checks, by check and metric."""
        return [self._latest[k] for k in sorted(self._latest)]

    @property
    def queued(self) -> int:
        """Points waiting to be written."""
        return len(self._queue)

    # --- the background task ------------------------------------------------------------------

    async def run(self) -> None:
        """Write, roll up and prune until cancelled; then write what is left."""
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.settings.flush_interval):
                        await self._wake.wait()
                self._wake.clear()
                if await self.flush() and len(self._queue) >= self.settings.flush_points:
                    self._wake.set()  # a backlog: write the next batch at once
                now = self._clock()
                last = self._last_maintenance
                if last is None or now - last >= self.settings.maintenance_interval:
                    await self.maintain(now)
        finally:
            with contextlib.suppress(StoreError):
                await self.flush(everything=True)

    async def flush(self, *, everything: bool = False) -> int:
        """Write queued points, a batch of ``flush_points`` per transaction; return how many.

        One batch unless ``everything``. A store failure keeps the points queued (and is
        logged once per outage); it is raised only when ``everything`` was asked for.
        """
        written = 0
        while self._queue:
            size = min(len(self._queue), self.settings.flush_points)
            batch = [self._queue.popleft() for _ in range(size)]
            try:
                await telemetry_store.write_points(self.db, batch, self._ids)
            except BaseException as exc:
                # Cancelled too: the final flush of `run` must still find these points.
                self._queue.extendleft(reversed(batch))
                self._bound()
                if everything or not isinstance(exc, StoreError):
                    raise
                self._store_failed(exc)
                return written
            written += len(batch)
            self._store_recovered()
            if not everything:
                break
        return written

    async def maintain(self, now: float) -> None:
        """Write everything queued, then roll up closed buckets and delete old data."""
        self._last_maintenance = now
        try:
            await self.flush(everything=True)
            retention = self.settings.retention
            rolled = await telemetry_store.rollup(
                self.db, now, retention=retention, delay=self.settings.rollup_delay
            )
            pruned = await telemetry_store.enforce_retention(self.db, now, retention=retention)
        except StoreError as exc:
            self._store_failed(exc)
            return
        self._store_recovered()
        logger.debug(
            "telemetry rolled up %d 5-minute and %d hourly buckets; deleted %d raw, "
            "%d 5-minute and %d hourly rows",
            rolled.five_minute,
            rolled.hourly,
            pruned.raw,
            pruned.five_minute,
            pruned.hourly,
            extra={"action": "telemetry_maintained"},
        )

    # --- bookkeeping --------------------------------------------------------------------------

    def _bound(self) -> None:
        excess = len(self._queue) - self.settings.max_queued_points
        if excess <= 0:
            return
        for _ in range(excess):
            self._queue.popleft()
        if not self._dropped:
            logger.warning(
                "more than %d telemetry points wait to be written: dropping the oldest "
                "until the store takes them again",
                self.settings.max_queued_points,
                extra={"action": "telemetry_dropped"},
            )
        self._dropped += excess

    def _store_failed(self, exc: StoreError) -> None:
        self._latch.failed(exc.message)

    def _store_recovered(self) -> None:
        self._latch.succeeded()
        if self._dropped:
            logger.warning(
                "%d telemetry point(s) were dropped while the store failed",
                self._dropped,
                extra={"action": "telemetry_dropped"},
            )
        self._dropped = 0
