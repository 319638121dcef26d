"""The alarm stage of the manager: feeds the `AlarmBook`, persists it, serves operators.

    EngineRunner ──interpret──▶ ThresholdInterpreter (thresholds, metric signals)
         └──observe(Observed)─▶ AlarmService ──▶ AlarmBook ──▶ Notify (queues)
                                   │ run(): tick every second, save changes in batches
                                   └─ acknowledge / downtimes: validated, saved at once

Wiring (the manager does it)::

    alarms = AlarmService(db, notify=notifier.queue)
    await alarms.start()                   # before the runner's start: restores open alarms
    runner = EngineRunner(..., downstream=[..., alarms], interpret=alarms.interpret)
    tasks: alarms.run() beside runner.run()

`observe` runs inside the engine loop: it only updates memory. On the runner's first turn
(``observed.loading``) the saved statuses are reconciled with the restored alarms without
news: an alarm the store already has is neither reopened nor announced again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from watchkeeper import store
from watchkeeper.alarms import repository as alarm_store
from watchkeeper.alarms.lifecycle import AlarmBook
from watchkeeper.alarms.thresholds import MetricSignal, ThresholdInterpreter
from watchkeeper.alarms.values import Alarm, AlarmEvent, AlarmNotFound, AlarmRequestError, Downtime
from watchkeeper.document.normalize import CheckRecord
from watchkeeper.engine import CheckStatus
from watchkeeper.engine.observed import Observed
from watchkeeper.errors import StoreError
from watchkeeper.latch import FailureLatch
from watchkeeper.notify.notification import Notify
from watchkeeper.results import CheckOutcome
from watchkeeper.store.bulk import Listed
from watchkeeper.store.db import Database

logger = logging.getLogger(__name__)

#: How often timers run (downtimes, acknowledgement expiry, reminders, no data).
TICK_INTERVAL = 1.0
#: Timeline events kept while the store fails, at most; the oldest go first.
MAX_UNSAVED_EVENTS = 100_000
#: Longest author name and comment an operator may give.
MAX_AUTHOR = 128
MAX_COMMENT = 4096


@dataclass(frozen=True, slots=True, kw_only=True)
class _Early:
    observed: Observed
    now: float


class AlarmService:
    """A `Downstream` stage: alarms from the engine's turns, and the operator's actions."""

    def __init__(
        self,
        db: Database,
        notify: Notify,
        *,
        clock: Callable[[], float] = time.time,
        tick_interval: float = TICK_INTERVAL,
        interpreter: ThresholdInterpreter | None = None,
        on_metric_signal: Callable[[MetricSignal, float], None] | None = None,
    ) -> None:
        self.db = db
        #: Told of every metric alarm signal too (remediation rules with ``when.metric``).
        self.on_metric_signal = on_metric_signal
        self.interpreter = interpreter or ThresholdInterpreter()
        self.book = AlarmBook(notify)
        self._clock = clock
        self._tick_interval = tick_interval
        self._loaded = False
        self._early: list[_Early] = []
        self._saved: list[CheckStatus] = []
        self._unsaved: dict[int, Alarm] = {}
        self._unsaved_events: list[AlarmEvent] = []
        self._latch = FailureLatch(
            logger,
            "cannot save alarms, will retry: %s",
            "saving alarms recovered",
            action="alarms_store",
        )
        self._lock = asyncio.Lock()

    def _signalled(self, signal: MetricSignal, now: float) -> None:
        if self.on_metric_signal is not None:
            self.on_metric_signal(signal, now)

    def interpret(self, record: CheckRecord, outcome: CheckOutcome, now: float) -> CheckOutcome:
        """The runner's ``interpret`` hook: the document's thresholds on a result."""
        return self.interpreter.interpret(record, outcome, now)

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self, *, quiet: bool = False) -> None:
        """Restore open alarms, live downtimes and the alarm id counter from the store
        (``quiet``: a standby's view reloads them every few seconds; not worth a line)."""
        now = self._clock()
        async with self.db.session() as session:
            open_alarms = await alarm_store.list_alarms(session, open_only=True)
            downtimes = await alarm_store.list_downtimes(session, live_at=now)
            next_id = await alarm_store.next_alarm_id(session)
            saved = await store.list_check_states(session)
        self.book.load(open_alarms, downtimes, now, next_id=next_id)
        # The runner's loading turn carries only the statuses it re-flagged: the saved
        # ones are reconciled with it, once the checks (and their channels) are known.
        self._saved = list(saved.values())
        self._loaded = True
        early, self._early = self._early, []
        for item in early:
            self.observe(item.observed, item.now)
        logger.log(
            logging.DEBUG if quiet else logging.INFO,
            "alarms loaded: %d open, %d downtime(s)",
            len(open_alarms),
            len(downtimes),
            extra={"action": "alarms_loaded"},
        )

    async def run(self) -> None:
        """Tick the timers and save changes about every second until cancelled."""
        try:
            while True:
                await asyncio.sleep(self._tick_interval)
                self.tick(self._clock())
                with contextlib.suppress(StoreError):
                    await self.flush()
        finally:
            with contextlib.suppress(StoreError):
                await self.flush(force=True)

    def tick(self, now: float) -> None:
        """One round of timers: no-data signals, downtimes, expiries, reminders."""
        if not self._loaded:
            return
        for signal in self.interpreter.tick(now):
            self.book.metric_signal(signal, now)
            self._signalled(signal, now)
        self.book.tick(now)

    # --- the engine's turns -----------------------------------------------------------------

    def observe(self, observed: Observed, now: float) -> None:
        """Take in one turn of the engine (cheap: memory only)."""
        if not self._loaded:
            # The runner started first: keep the turn for `start` to replay.
            self._early.append(_Early(observed=observed, now=now))
            return
        book = self.book
        if observed.checks is not None:
            book.configure(observed.checks, now)
            self.interpreter.retain(observed.checks)
        if observed.removed:
            book.remove(observed.removed, now)
            self.interpreter.forget(observed.removed)
        for zone in observed.zones:
            book.zone_status(zone, now)
        if observed.loading:
            # Saved statuses, and host changes made up from UP: reconcile, announce nothing.
            for host in observed.hosts:
                book.restore_host(host, now)
            saved, self._saved = self._saved, []
            for status in (*saved, *observed.statuses):
                book.restore_status(status, now)
            return
        for host in observed.hosts:
            book.host_status(host, now)
        for host_change in observed.host_changes:
            book.host_change(host_change, now)
        for signal in self.interpreter.take_signals():
            book.metric_signal(signal, now)
            self._signalled(signal, now)
        for change in observed.changes:
            book.state_change(change, now)
        for status in observed.statuses:
            book.check_status(status, now)

    # --- persisting -------------------------------------------------------------------------

    async def flush(self, *, force: bool = False) -> None:
        """Save what the book changed; on a store failure keep it for the next flush."""
        async with self._lock:
            changes = self.book.take_changes()
            for alarm in changes.alarms:
                self._unsaved[alarm.id] = alarm
            self._unsaved_events.extend(changes.events)
            excess = len(self._unsaved_events) - MAX_UNSAVED_EVENTS
            if excess > 0:
                del self._unsaved_events[:excess]
            if not self._unsaved and not self._unsaved_events:
                return
            alarms, events = list(self._unsaved.values()), self._unsaved_events
            try:
                await alarm_store.save_alarms(self.db, alarms, events)
            except StoreError as exc:
                self._latch.failed(exc.message)
                raise
            # Only what was sent is done: alarms changed meanwhile stay queued by id.
            for alarm in alarms:
                if self._unsaved.get(alarm.id) is alarm:
                    del self._unsaved[alarm.id]
            self._unsaved_events = self._unsaved_events[len(events) :]
            self._latch.succeeded()

    # --- operators --------------------------------------------------------------------------

    async def acknowledge(
        self,
        key: str,
        author: str,
        comment: str,
        sticky: bool = True,
        expires: float | None = None,
    ) -> list[Alarm]:
        """Acknowledge the open alarms of ``key``; saved before this returns."""
        now = self._clock()
        _text("key", key, MAX_AUTHOR * 2 + 1)
        _text("author", author, MAX_AUTHOR)
        _comment(comment)
        if expires is not None and (not _finite(expires) or expires <= now):
            raise AlarmRequestError("expires", "must be a time in the future (epoch seconds)")
        alarms = self.book.acknowledge(
            key, author=author, comment=comment, now=now, sticky=sticky, expires=expires
        )
        await self.flush()
        return alarms

    async def unacknowledge(self, key: str) -> list[Alarm]:
        """Remove the acknowledgement of ``key``'s open alarms; saved before this returns."""
        _text("key", key, MAX_AUTHOR * 2 + 1)
        alarms = self.book.unacknowledge(key, self._clock())
        await self.flush()
        return alarms

    async def schedule_downtime(
        self,
        host: str,
        service: str | None,
        start: float,
        end: float,
        author: str,
        comment: str,
    ) -> Downtime:
        """Schedule a downtime of a host (with its services) or of one service."""
        now = self._clock()
        _text("host", host, MAX_AUTHOR)
        if service is not None:
            _text("service", service, MAX_AUTHOR)
        _text("author", author, MAX_AUTHOR)
        _comment(comment)
        if not _finite(start):
            raise AlarmRequestError("start", "must be a time (epoch seconds)")
        if not _finite(end):
            raise AlarmRequestError("end", "must be a time (epoch seconds)")
        if end <= start:
            raise AlarmRequestError("end", "must be after start")
        if end <= now:
            raise AlarmRequestError("end", "must be in the future")
        unknown = self.book.unknown_target(host, service)
        if unknown is not None:
            raise AlarmRequestError(*unknown)
        downtime = await alarm_store.insert_downtime(
            self.db,
            host=host,
            service=service,
            start=start,
            end=end,
            author=author,
            comment=comment,
            created_at=now,
        )
        self.book.add_downtime(downtime, self._clock())
        with contextlib.suppress(StoreError):
            await self.flush()
        return downtime

    async def cancel_downtime(self, downtime_id: int) -> Downtime:
        """Cancel a downtime (ending it now if it runs); saved before this returns."""
        if isinstance(downtime_id, bool) or not isinstance(downtime_id, int):
            raise AlarmRequestError("downtime_id", "must be an integer")
        now = self._clock()
        if all(d.id != downtime_id for d in self.book.downtimes()):
            raise AlarmNotFound(f"no scheduled downtime {downtime_id}")
        saved = await alarm_store.cancel_downtime(self.db, downtime_id, now)
        if saved is None:
            raise AlarmNotFound(f"no scheduled downtime {downtime_id}")
        self.book.cancel_downtime(downtime_id, now)
        with contextlib.suppress(StoreError):
            await self.flush()
        return saved

    async def list_alarms(
        self,
        *,
        open_only: bool = True,
        key: str | None = None,
        host: str | None = None,
        limit: int = 100,
        before_id: int | None = None,
    ) -> list[Alarm]:
        """Alarms, newest first: the open ones from memory, the history from the store."""
        listed = await self.page_alarms(
            open_only=open_only, key=key, host=host, limit=limit, before_id=before_id
        )
        return listed.items

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
        """A page of `list_alarms`, and how many alarms match."""
        if limit < 1:
            raise AlarmRequestError("limit", "must be positive")
        if offset < 0:
            raise AlarmRequestError("offset", "must not be negative")
        if open_only:
            found = [
                a
                for a in reversed(self.book.alarms(open_only=True, key=key))
                if (host is None or a.host == host) and (before_id is None or a.id < before_id)
            ]
            return Listed(found[offset : offset + limit], len(found))
        with contextlib.suppress(StoreError):
            await self.flush()
        async with self.db.session() as session:
            return await alarm_store.page_alarms(
                session, open_only=False, key=key, host=host, limit=limit, offset=offset,
                before_id=before_id,
            )  # fmt: skip

    async def alarm_events(self, alarm_id: int) -> list[AlarmEvent]:
        """One alarm's timeline, oldest first."""
        with contextlib.suppress(StoreError):
            await self.flush()
        async with self.db.session() as session:
            return await alarm_store.list_alarm_events(session, alarm_id)

    async def list_downtimes(self, *, include_past: bool = False) -> list[Downtime]:
        """Downtimes not over yet (with the past and cancelled ones if ``include_past``)."""
        if not include_past:
            return self.book.downtimes()
        async with self.db.session() as session:
            return await alarm_store.list_downtimes(session, include_cancelled=True)

    def silenced(self, key: str) -> str | None:
        """Why remediation must leave ``key`` alone now (downtime, ack, flapping, parent)."""
        return self.book.silenced(key, self._clock())


def _text(argument: str, value: object, longest: int) -> None:
    if not isinstance(value, str) or not value.strip():
        raise AlarmRequestError(argument, "must be a non-empty string")
    if len(value) > longest:
        raise AlarmRequestError(argument, f"must be at most {longest} characters")


def _comment(value: object) -> None:
    if not isinstance(value, str):
        raise AlarmRequestError("comment", "must be a string")
    if len(value) > MAX_COMMENT:
        raise AlarmRequestError("comment", f"must be at most {MAX_COMMENT} characters")


def _finite(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )
