"""The engine at work in the manager: one loop between the pure `Engine` and the job server.

    ConfigIntake ──on_import──▶ ┐
    JobServer ──on_result/on_lost─▶ events ─▶ EngineRunner._loop ─▶ Engine (decides)
    timer (every ~0.2 s) ───────▶ ┘                │
                                                   ├─▶ JobServer.submit(Job)
                                                   ├─▶ store.save_check_states (batched)
                                                   └─▶ Downstream.observe(Observed)
                                                       (telemetry, alarms, remediation)

The runner is the one state-changing loop of principle 4: the job server and the intake
only *post* typed events (`ResultReceived`, `JobLost`, `ConfigImported`, `CheckNow`) and
wake it; each event type has one handler, and only the loop calls the engine. A result
goes through the ``interpret`` hook (the document's thresholds) before the engine sees it.
At the end of every turn the stages after the engine get one `Observed` value with what
the turn produced. Action jobs (remediation) use the same job server: `submit_action`
sends one, and its result or loss goes to the callback given, not to the engine. The
engine returns `Step` values; the loop carries them out (principle 3). Statuses are
saved in batches, every `flush_interval`, because a transaction per result would cap
throughput at the database's commit rate.

Time is ``time.time()``, read here only: job deadlines go over the wire as epoch seconds,
so the engine's clock must be the same one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from watchkeeper import store
from watchkeeper.document.diff import Delta
from watchkeeper.document.normalize import CheckRecord, Snapshot
from watchkeeper.document.slots import RESOURCE_LABEL as SLOT_LABEL
from watchkeeper.engine import (
    DEFAULT_WORKER_GRACE,
    CheckStatus,
    DispatchDecision,
    Engine,
    HostStateChange,
    HostStatus,
    StateChange,
    Step,
    ZoneHealth,
    ZoneStatus,
)
from watchkeeper.engine.observed import CheckResult, Downstream, Observed
from watchkeeper.errors import StoreError
from watchkeeper.jobs.payloads import DEFAULT_CHECK_TIMEOUT, CheckPayload
from watchkeeper.jobs.pools import no_worker_reason, pool_agent
from watchkeeper.latch import FailureLatch
from watchkeeper.logs import NOTICE
from watchkeeper.manager.intake import IntakeOutcome
from watchkeeper.manager.summary import Tally
from watchkeeper.results import CheckOutcome
from watchkeeper.transport.protocol import Job, Result
from watchkeeper.transport.server import JobServer

logger = logging.getLogger(__name__)

#: How often the loop ticks the engine when nothing wakes it earlier.
TICK_INTERVAL = 0.2
#: Why a check of a slot host whose machine has no address yet does not run.
NOT_PROVISIONED = "not provisioned yet"
#: How often changed statuses are written, at most.
FLUSH_INTERVAL = 0.5
#: Seconds after its deadline a job id is forgotten (its result is ignored anyway).
JOB_MEMORY = 60.0


@dataclass(frozen=True, slots=True)
class ResultReceived:
    """A worker answered a job."""

    worker: str
    result: Result


@dataclass(frozen=True, slots=True)
class JobLost:
    """The job server could not place a job again after its worker went away."""

    job: Job
    reason: str


@dataclass(frozen=True, slots=True)
class ConfigImported:
    """The intake imported a new version: the checks delta and the new configuration."""

    delta: Delta
    checks: Mapping[str, CheckRecord]


@dataclass(frozen=True, slots=True)
class CheckNow:
    """An operator (or a remediation) asked for a check to run at once."""

    key: str


Event = ResultReceived | JobLost | ConfigImported | CheckNow

#: Turns a worker's outcome into the one the engine records (thresholds): pure, cheap.
Interpret = Callable[[CheckRecord, CheckOutcome, float], CheckOutcome]
#: Told how an action job ended: its result, or None and why it was lost; and the worker
#: that answered (None when lost).
ActionDone = Callable[[Result | None, str | None, str | None], None]


@dataclass(frozen=True, slots=True)
class _InFlight:
    key: str
    token: int
    deadline: float


class EngineRunner:
    """Owns the `Engine` and drives it with the `JobServer`; `run` until cancelled.

    ``on_summary(line)`` is called with a one-line summary of the check states whenever it
    changes (for ``watchkeeper up``); ``on_zones(zones)`` whenever the set of zones that
    checks run in changes (the embedded worker is enrolled for all of them).
    """

    def __init__(
        self,
        db: store.Database,
        server_factory: Callable[[EngineRunner], JobServer],
        *,
        clock: Callable[[], float] = time.time,
        tick_interval: float = TICK_INTERVAL,
        flush_interval: float = FLUSH_INTERVAL,
        worker_grace: float = DEFAULT_WORKER_GRACE,
        on_summary: Callable[[str], None] | None = None,
        on_zones: Callable[[frozenset[str]], None] | None = None,
        max_unsaved_changes: int = 100_000,
        downstream: Sequence[Downstream] = (),
        interpret: Interpret | None = None,
    ) -> None:
        self.db = db
        self.engine = Engine(worker_grace=worker_grace)
        self.server = server_factory(self)
        self._clock = clock
        self._tick_interval = tick_interval
        self._flush_interval = flush_interval
        self._on_summary = on_summary
        self._on_zones = on_zones
        self._events: deque[Event] = deque()
        self._wake = asyncio.Event()
        #: Job ids are unique across restarts: a result meant for a previous run never
        #: matches a job of this one.
        self._run_id = secrets.token_hex(4)
        self._jobs: dict[str, _InFlight] = {}
        self._unsaved: dict[str, CheckStatus] = {}
        #: History entries waiting for `_flush`, oldest first; bounded while the store fails.
        self._unsaved_changes: deque[StateChange | HostStateChange] = deque()
        self._max_unsaved_changes = max_unsaved_changes
        #: History entries dropped since the store last took a batch.
        self._dropped_changes = 0
        self._removed: set[str] = set()
        #: Pool (a zone, or ``agent:HOST``) -> how many running checks are in it.
        self._zones: dict[str, int] = {}
        self._online: set[str] = set()
        #: Pool -> the health last logged (`_log_zone`).
        self._zone_seen: dict[str, ZoneStatus] = {}
        self._summary = ""
        self._tally = Tally()
        self._last_flush = 0.0
        self._last_prune = 0.0
        self._latch = FailureLatch(
            logger,
            "cannot save check states, will retry: %s",
            "saving check states recovered",
            action="states_store",
        )
        self.loaded = asyncio.Event()
        self.downstream = list(downstream)
        self._interpret = interpret
        #: Action job id -> its callback and deadline (see `submit_action`).
        self._actions: dict[str, tuple[ActionDone, float]] = {}
        self._turn_out = _TurnCollector()
        #: Check kinds the manager evaluates itself (``infra``): kind -> check -> outcome.
        #: A string instead of an outcome: why the check does not run yet (it stays stale).
        self.local_checks: dict[str, Callable[[Mapping[str, Any]], CheckOutcome | str]] = {}
        #: The address of a slot host (its machine's, from the inventory), or None while
        #: it has no machine: its checks then wait as "not provisioned yet".
        self.slot_address: Callable[[str], str | None] = lambda host: None
        #: The document's platform objects by name, for ``platform`` checks (the job
        #: carries the platform, credentials as a reference, to the zone's worker), and
        #: the store's owner id: a platform check looks only at machines tagged with it.
        self.platforms: Mapping[str, Mapping[str, Any]] = {}
        self.owner = ""

    # --- what the job server and the intake call (post an event, wake the loop) -----------

    def result_received(self, worker: str, result: Result) -> None:
        self._post(ResultReceived(worker, result))

    def job_lost(self, job: Job, reason: str) -> None:
        self._post(JobLost(job, reason))

    def config_imported(self, outcome: IntakeOutcome, snapshot: Snapshot) -> None:
        if outcome.diff is not None:
            self._post(ConfigImported(outcome.diff.checks, snapshot.checks))

    def has_worker(self, zone: str) -> bool:
        """Whether a worker of ``zone`` is connected now."""
        return self.server.zone_online(zone)

    def check_now(self, key: str) -> bool:
        """Ask for ``key`` to run at the next turn; False when no such check runs."""
        if key not in self.engine.scheduler:
            return False
        self._post(CheckNow(key))
        return True

    async def submit_action(self, job: Job, done: ActionDone) -> bool:
        """Send an action job to a worker of its zone; ``done`` gets its result or its loss.

        False (and ``done`` is not called) when no worker can take it now.
        """
        self._actions[job.job_id] = (done, job.deadline)
        if await self.server.submit(job):
            return True
        self._actions.pop(job.job_id, None)
        return False

    def _post(self, event: Event) -> None:
        self._events.append(event)
        self._wake.set()

    @property
    def zones(self) -> frozenset[str]:
        """The zones the running checks are in, but for agent checks (only agents run them)."""
        return frozenset(zone for zone in self._zones if pool_agent(zone) is None)

    @property
    def summary(self) -> str:
        return self._summary

    # --- the loop -------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the running checks and their saved states; start the job server."""
        async with self.db.session() as session:
            records = await store.list_checks(session)
            saved = await store.list_check_states(session)
        now = self._clock()
        for record in records:
            self._count_zone(record.pool, +1)
        self._carry_out(self.engine.load(records, now, statuses=saved), now)
        self._turn_out.checks = {record.key: record for record in records}
        self._observe(now, loading=True)
        await self.server.start()
        self._zones_changed()
        self.loaded.set()
        logger.info(
            "engine loaded %d check(s), %d with a saved state",
            len(records),
            len(saved.keys() & {r.key for r in records}),
            extra={"action": "engine_loaded"},
        )

    async def load_view(self, records: list[CheckRecord] | None = None) -> list[CheckRecord]:
        """A standby's read-only view: the running checks (``records``, or read from the
        store) and their saved states in a fresh engine that dispatches nothing (no job
        server started, no loop), for the web; returns the records, to be given again while
        the configuration does not change."""
        async with self.db.session() as session:
            if records is None:
                records = await store.list_checks(session)
            saved = await store.list_check_states(session)
        engine = Engine(worker_grace=self.engine.worker_grace)
        engine.load(records, self._clock(), statuses=saved)
        self.engine = engine
        self._zones = {}
        for record in records:
            self._count_zone(record.pool, +1)
        return records

    async def run(self) -> None:
        """Tick, dispatch, record and save until cancelled; then save what is left."""
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._tick_interval):
                        await self._wake.wait()
                self._wake.clear()
                await self._turn()
        finally:
            with contextlib.suppress(StoreError):
                await self._flush(force=True)
            await self.server.aclose()

    async def _turn(self) -> None:
        now = self._clock()
        while self._events:
            self._handle(self._events.popleft(), now)
        self._track_zones(now)
        step = self.engine.tick(now)
        self._carry_out(step, now)
        for decision in step.dispatch:
            await self._submit(decision, now)
        if now - self._last_prune > JOB_MEMORY:
            self._last_prune = now
            self._jobs = {j: f for j, f in self._jobs.items() if f.deadline + JOB_MEMORY > now}
            self._actions = {j: a for j, a in self._actions.items() if a[1] + JOB_MEMORY > now}
        self._observe(now)
        if now - self._last_flush >= self._flush_interval:
            await self._flush()

    # --- one handler per event ------------------------------------------------------------

    def _handle(self, event: Event, now: float) -> None:
        if isinstance(event, ResultReceived):
            self._result(event, now)
        elif isinstance(event, JobLost):
            self._lost(event, now)
        elif isinstance(event, CheckNow):
            self.engine.check_now(event.key, now)
        else:
            self._imported(event, now)

    def _result(self, event: ResultReceived, now: float) -> None:
        action = self._actions.pop(event.result.job_id, None)
        if action is not None:
            action[0](event.result, None, event.worker)
            return
        flight = self._jobs.pop(event.result.job_id, None)
        if flight is None or flight.token != event.result.token:
            return
        raw = event.result.outcome()
        if flight.key not in self.engine.scheduler:
            return
        record = self.engine.scheduler.record(flight.key)
        outcome = raw if self._interpret is None else self._interpret(record, raw, now)
        step = self.engine.record_result(flight.key, flight.token, outcome, now)
        if step.statuses and self.downstream:
            self._turn_out.results.append(
                CheckResult(key=flight.key, record=record, outcome=outcome, raw=raw, at=now)
            )
        self._carry_out(step, now)

    def _lost(self, event: JobLost, now: float) -> None:
        action = self._actions.pop(event.job.job_id, None)
        if action is not None:
            action[0](None, event.reason, None)
            return
        flight = self._jobs.pop(event.job.job_id, None)
        if flight is None:
            return
        # Its worker left and no peer could take it: the check did not run, so it says
        # nothing new about its target.
        step = self.engine.not_run(flight.key, flight.token, event.reason, now)
        self._carry_out(step, now)

    def _imported(self, event: ConfigImported, now: float) -> None:
        delta = event.delta
        for key in delta.removed:
            old = self.engine.scheduler.record(key) if key in self.engine.scheduler else None
            if old is not None:
                self._count_zone(old.pool, -1)
        for key in (*delta.changed, *delta.added):
            if key in self.engine.scheduler:
                self._count_zone(self.engine.scheduler.record(key).pool, -1)
            self._count_zone(event.checks[key].pool, +1)
        self._carry_out(self.engine.apply_diff(delta, event.checks, now), now)
        self._turn_out.checks = event.checks
        self._zones_changed()
        logger.info(
            "engine applied an import: %s",
            delta.counts(),
            extra={"action": "engine_reloaded"},
        )

    # --- carrying out decisions -----------------------------------------------------------

    def _carry_out(self, step: Step, now: float) -> None:
        """Log and queue the step's history entries and statuses for `_flush`, then summarise.

        The host entries of `Engine.load` are left out: host states are not saved, so the
        engine rebuilds them from UP at start, and a host that was DOWN before a restart
        would otherwise get a made-up change on every start.
        """
        for zone in step.zones:
            self._log_zone(zone, now)
        for change in step.changes:
            logger.info(
                "%s is %s %s: %s",
                change.key,
                change.to_state.name,
                change.to_type.value.upper(),
                change.output,
                extra={"action": "state_changed", "check": change.log_context()},
            )
        queue = self._unsaved_changes
        queue.extend(step.changes)
        if self.loaded.is_set():
            queue.extend(step.host_changes)
        excess = len(queue) - self._max_unsaved_changes
        if excess > 0:
            for _ in range(excess):
                queue.popleft()
            if not self._dropped_changes:
                logger.warning(
                    "more than %d state changes wait to be saved: dropping the oldest from "
                    "the history until the store takes them again",
                    self._max_unsaved_changes,
                    extra={"action": "history_dropped"},
                )
            self._dropped_changes += excess
        for status in step.statuses:
            self._unsaved[status.key] = status
        for key in step.removed:
            self._unsaved.pop(key, None)
        if self.downstream:
            self._turn_out.add(step)
        if (step.statuses or step.removed) and self._on_summary is not None:
            tally = self._tally
            for status in step.statuses:
                tally.set(status)
            for key in step.removed:
                tally.remove(key)
            if len(tally) != len(self.engine.statuses):  # a change no step carried
                tally.reset(self.engine.statuses.values())
            line = tally.line()
            if line != self._summary:
                self._summary = line
                self._on_summary(line)

    async def _submit(self, decision: DispatchDecision, now: float) -> None:
        job_id = f"{self._run_id}-{decision.token}"
        spec = decision.check.spec
        local = self.local_checks.get(str(spec["check"].get("kind")))
        if local is not None:
            outcome = local(spec["check"])
            if isinstance(outcome, str):
                step = self.engine.not_run(decision.key, decision.token, outcome, now)
            else:
                step = self.engine.record_result(decision.key, decision.token, outcome, now)
            self._carry_out(step, now)
            return
        address = str(spec.get("address") or "")
        if not address and SLOT_LABEL in (spec.get("labels") or {}):
            address = self.slot_address(decision.check.host) or ""
            if not address:
                self._carry_out(
                    self.engine.not_run(decision.key, decision.token, NOT_PROVISIONED, now), now
                )
                return
        check = spec["check"]
        if check.get("kind") == "platform":
            check = {
                **check,
                "_platform": dict(self.platforms.get(check.get("platform"), {})),
                "_host": decision.check.host,
                "_owner": self.owner,
            }
        job = Job(
            job_id=job_id,
            zone=decision.zone,
            payload=CheckPayload(
                key=decision.key,
                check=check,
                address=address,
                timeout=float(spec.get("timeout") or DEFAULT_CHECK_TIMEOUT),
            ),
            deadline=decision.deadline,
            token=decision.token,
            agent=decision.check.agent,
        )
        self._jobs[job_id] = _InFlight(decision.key, decision.token, decision.deadline)
        if await self.server.submit(job):
            return
        # Online but full (or just gone): say so now rather than wait for the deadline.
        self._jobs.pop(job_id, None)
        if decision.check.agent is not None:
            reason = no_worker_reason(decision.pool)
        else:
            reason = f"no worker of zone {decision.zone} could take the job"
        self._carry_out(self.engine.not_run(decision.key, decision.token, reason, now), now)

    def _observe(self, now: float, *, loading: bool = False) -> None:
        """Hand this turn's results and changes to the stages after the engine."""
        collected, self._turn_out = self._turn_out, _TurnCollector()
        if not self.downstream:
            return
        observed = collected.build(loading=loading)
        if not observed:
            return
        for stage in self.downstream:
            try:
                stage.observe(observed, now)
            except Exception:
                # One stage's bug must not stop checks, nor the other stages.
                logger.exception(
                    "%s failed to observe a turn",
                    type(stage).__name__,
                    extra={"action": "downstream_failed"},
                )

    def _log_zone(self, zone: ZoneStatus, now: float) -> None:
        """Say once when a zone loses its last worker, gives up waiting, and recovers."""
        before = self._zone_seen.get(zone.zone)
        self._zone_seen[zone.zone] = zone
        what = "the agent of " + zone.agent if zone.agent is not None else "zone " + zone.zone
        extra = {"action": f"zone_{zone.health.value}", "zone": zone.log_context()}
        if zone.health is ZoneHealth.WAITING and zone.had_worker:
            logger.warning(
                "%s lost its last worker: its checks wait up to %.0f s for one",
                what,
                self.engine.worker_grace,
                extra=extra,
            )
        elif zone.health is ZoneHealth.OFFLINE:
            checks = self._zones.get(zone.zone, 0)
            logger.warning(
                "%s has had no worker for %.0f s: its %d check(s) are not run (their last "
                "states are kept, marked stale) until one connects",
                what,
                now - (zone.no_worker_since or now),
                checks,
                extra=extra,
            )
        elif zone.health is ZoneHealth.ONLINE and before is not None:
            if before.health is ZoneHealth.OFFLINE:
                logger.log(NOTICE, "%s has a worker again; its checks run again", what, extra=extra)
            elif before.had_worker:  # back within the grace: nothing was missed
                logger.log(NOTICE, "%s has a worker again", what, extra=extra)
            else:  # its first worker, at start or after the import that brought it
                logger.info("%s has a worker", what, extra=extra)

    def _track_zones(self, now: float) -> None:
        for zone in self._zones:
            online = self.server.zone_online(zone)
            if online and zone not in self._online:
                self._online.add(zone)
                self._carry_out(self.engine.zone_online(zone, now), now)
            elif not online and zone in self._online:
                self._online.discard(zone)
                self._carry_out(self.engine.zone_offline(zone, now), now)

    def _count_zone(self, zone: str, by: int) -> None:
        count = self._zones.get(zone, 0) + by
        if count > 0:
            self._zones[zone] = count
        else:
            self._zones.pop(zone, None)
            self._online.discard(zone)

    def _zones_changed(self) -> None:
        if self._on_zones is not None:
            self._on_zones(self.zones)

    async def _flush(self, *, force: bool = False) -> None:
        """Save the changed statuses and the queued history entries in one transaction.

        On failure both are kept for the next flush: statuses by key (the newest wins) and
        history entries in order. At most ``max_unsaved_changes`` history entries wait
        (100,000 by default, some tens of MB): past that `_carry_out` drops the oldest, with
        one warning per outage, so a store that is down for hours cannot exhaust memory.
        """
        if not self._unsaved and not self._unsaved_changes:
            return
        self._last_flush = self._clock()
        batch, self._unsaved = self._unsaved, {}
        changes, self._unsaved_changes = self._unsaved_changes, deque()
        try:
            await store.save_check_states(self.db, list(batch.values()), changes)
        except BaseException as exc:
            # Cancelled too: `run` stops by cancellation and its last flush must find these.
            batch.update(self._unsaved)  # keep newer statuses over the ones that failed
            self._unsaved = batch
            changes.extend(self._unsaved_changes)  # and the history in the order it happened
            self._unsaved_changes = changes
            if force or not isinstance(exc, StoreError):
                raise
            self._latch.failed(exc.message)
            return
        self._latch.succeeded()
        if self._dropped_changes:
            logger.warning(
                "%d state change(s) were dropped from the history while the store failed",
                self._dropped_changes,
                extra={"action": "history_dropped"},
            )
        self._dropped_changes = 0


class _TurnCollector:
    """What one turn produced, gathered step by step for `Observed`."""

    def __init__(self) -> None:
        self.results: list[CheckResult] = []
        self.changes: list[StateChange] = []
        self.host_changes: list[HostStateChange] = []
        self.statuses: dict[str, CheckStatus] = {}
        self.hosts: dict[str, HostStatus] = {}
        self.removed: list[str] = []
        self.zones: dict[str, ZoneStatus] = {}
        self.checks: Mapping[str, CheckRecord] | None = None

    def add(self, step: Step) -> None:
        self.changes.extend(step.changes)
        self.host_changes.extend(step.host_changes)
        for status in step.statuses:
            self.statuses[status.key] = status
        for host in step.hosts:
            self.hosts[host.host] = host
        self.removed.extend(step.removed)
        for zone in step.zones:
            self.zones[zone.zone] = zone

    def build(self, *, loading: bool) -> Observed:
        return Observed(
            results=tuple(self.results),
            changes=tuple(self.changes),
            host_changes=tuple(self.host_changes),
            statuses=tuple(self.statuses.values()),
            hosts=tuple(self.hosts.values()),
            removed=tuple(self.removed),
            zones=tuple(self.zones.values()),
            checks=self.checks,
            loading=loading,
        )
