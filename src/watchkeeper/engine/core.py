"""The engine: scheduler, state machine and reachability behind one event-handling object.

The manager's single state-changing loop owns one `Engine` and calls one method per event:
`load` at start, `apply_diff` after an import, `tick` on its timer, `record_result` when a
worker reports, `zone_online`/`zone_offline` when workers come and go. Each returns a
`Step`, a value saying what to dispatch, which history entries to keep and which statuses
to save; the loop carries it out. Nothing here reads a clock or does I/O: ``now`` (seconds,
on one monotonic-style clock) comes with every call.

Results the engine makes up itself go through the same state machine as real ones:

* ``timed out: no result within Xs`` when a dispatch passes its deadline;
* ``stale: no result for Xs`` when a check is silent past its freshness (`Timing`) while
  its zone has a worker and nothing explains the silence.

A check that *cannot run* is another matter: no result is not a bad result. When a check
falls due in a zone without a worker (`zones`: OFFLINE, past ``worker_grace``), or no
worker of its zone could take it (`not_run`: all full, or gone with the job), the check
keeps its state, output and attempt, and is marked stale with the reason (``no worker for
zone Z``, ``no agent connected for host H``): no state change, no alarm, no host DOWN.
The zone's own health says what is wrong, once, as a problem of its own. Nothing is
queued: the check gets its next due time, so a dead zone never builds a backlog. While a
zone is WAITING (within the grace after start, an import that brought it, or the loss of
its last worker) its due checks are held instead, not stale, not queued twice, and
released on their phases when a worker comes, so they do not all run at once.

"Zone" in the liveness methods means a check's *pool* (`CheckRecord.pool`): its zone, or
``agent:HOST`` for an agent check, which only that host's agent can run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from watchkeeper.document.diff import Delta
from watchkeeper.document.normalize import CheckRecord
from watchkeeper.engine.reachability import (
    HostGraph,
    HostStateChange,
    HostStatus,
    host_transition,
    raw_host_state,
)
from watchkeeper.engine.scheduler import DEFAULT_DEADLINE_GRACE, DispatchDecision, Scheduler
from watchkeeper.engine.statemachine import CheckStatus, StateChange, apply
from watchkeeper.engine.states import HostState, StateType
from watchkeeper.engine.zones import ZoneHealth, ZoneStatus, advance, waiting
from watchkeeper.jobs.pools import no_worker_reason
from watchkeeper.results import CheckOutcome, CheckState

#: Seconds a zone may have no worker (after start or after its last worker left) before its
#: due checks become UNKNOWN instead of waiting.
DEFAULT_WORKER_GRACE = 60.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """What one event decided; the loop sends, records and saves it, in that order."""

    dispatch: tuple[DispatchDecision, ...] = ()
    changes: tuple[StateChange, ...] = ()
    host_changes: tuple[HostStateChange, ...] = ()
    #: Every check status that changed, once each (the latest).
    statuses: tuple[CheckStatus, ...] = ()
    #: Every host status that changed, once each (the latest).
    hosts: tuple[HostStatus, ...] = ()
    #: Checks removed by an import, whose saved status can go.
    removed: tuple[str, ...] = ()
    #: Every zone whose health changed, once each (the latest).
    zones: tuple[ZoneStatus, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.dispatch or self.statuses or self.hosts or self.removed or self.zones)


@dataclass(slots=True)
class _StepBuilder:
    dispatch: list[DispatchDecision] = field(default_factory=list)
    changes: list[StateChange] = field(default_factory=list)
    host_changes: list[HostStateChange] = field(default_factory=list)
    statuses: dict[str, CheckStatus] = field(default_factory=dict)
    hosts: dict[str, HostStatus] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)
    zones: dict[str, ZoneStatus] = field(default_factory=dict)

    def build(self) -> Step:
        return Step(
            dispatch=tuple(self.dispatch),
            changes=tuple(self.changes),
            host_changes=tuple(self.host_changes),
            statuses=tuple(self.statuses.values()),
            hosts=tuple(self.hosts.values()),
            removed=tuple(self.removed),
            zones=tuple(self.zones.values()),
        )


class Engine:
    """Check and host state for one configuration, advanced by events (see the module doc)."""

    def __init__(
        self,
        *,
        deadline_grace: float = DEFAULT_DEADLINE_GRACE,
        worker_grace: float = DEFAULT_WORKER_GRACE,
    ) -> None:
        self.scheduler = Scheduler(deadline_grace=deadline_grace)
        self.worker_grace = worker_grace
        self._statuses: dict[str, CheckStatus] = {}
        self._hosts: dict[str, HostStatus] = {}
        self._graph = HostGraph()
        #: host -> keys of its checks (its host check's key is the host name).
        self._by_host: dict[str, set[str]] = {}
        #: Pool -> its health, for every pool a running check is in.
        self._zones: dict[str, ZoneStatus] = {}
        #: zone -> checks held back while the zone waits for a worker.
        self._held: dict[str, set[str]] = {}

    # --- reading ---------------------------------------------------------------------------

    @property
    def statuses(self) -> Mapping[str, CheckStatus]:
        return MappingProxyType(self._statuses)

    @property
    def hosts(self) -> Mapping[str, HostStatus]:
        return MappingProxyType(self._hosts)

    @property
    def zones(self) -> Mapping[str, ZoneStatus]:
        """The health of every pool a running check is in."""
        return MappingProxyType(self._zones)

    def zone_has_worker(self, zone: str) -> bool:
        status = self._zones.get(zone)
        return status is not None and status.health is ZoneHealth.ONLINE

    # --- events ----------------------------------------------------------------------------

    def load(
        self,
        checks: Iterable[CheckRecord],
        now: float,
        *,
        statuses: Mapping[str, CheckStatus] | None = None,
        hosts: Mapping[str, HostStatus] | None = None,
    ) -> Step:
        """Start with a configuration and the statuses saved by the last run, if any.

        Restored statuses keep their state and history times; freshness restarts at ``now``
        so a manager that was down for an hour does not call everything stale at once.
        """
        restored = statuses or {}
        step = _StepBuilder()
        for record in checks:
            status = restored.get(record.key) or CheckStatus.initial(record.key, now)
            self._statuses[record.key] = status
            self.scheduler.add(record, now, retrying=status.retrying)
            self._index(record)
            self._track_zone(record.pool, now, step)
        self._hosts.update({h: s for h, s in (hosts or {}).items() if h in self._by_host})
        self._refresh_hosts(self._by_host, now, step)
        return step.build()

    def apply_diff(self, delta: Delta, checks: Mapping[str, CheckRecord], now: float) -> Step:
        """An import: add, reschedule and drop only what the diff names.

        ``checks`` is the new configuration's records (``Snapshot.checks``). Unchanged checks
        are not touched; changed ones keep their status and history and are requeued with
        their new settings; removed ones are dropped.
        """
        step = _StepBuilder()
        touched: set[str] = set()
        for key in delta.removed:
            if key in self.scheduler:
                record = self.scheduler.record(key)
                self.scheduler.remove(key)
                self._unindex(record)
                self._statuses.pop(key, None)
                step.removed.append(key)
                touched.add(record.host)
        # Tolerate a diff taken against a slightly different base: what the engine does
        # not know is added, what it already knows is changed.
        for key in (*delta.changed, *delta.added):
            record = checks[key]
            if key in self.scheduler:
                old = self.scheduler.record(key)
                self._unindex(old)
                self.scheduler.update(record, now, retrying=self._statuses[key].retrying)
                touched.add(old.host)
            else:
                self._statuses[key] = CheckStatus.initial(key, now)
                self.scheduler.add(record, now)
            self._index(record)
            self._track_zone(record.pool, now, step)
            touched.add(record.host)
        if delta.removed or delta.changed:
            used = {self.scheduler.record(key).pool for key in self.scheduler}
            for zone in self._zones.keys() - used:
                del self._zones[zone]
                self._held.pop(zone, None)
        for host in touched - self._by_host.keys():
            self._hosts.pop(host, None)
        affected = {h for h in touched if h in self._by_host}
        for host in touched:
            affected.update(self._graph.children(host))
        self._refresh_hosts(affected, now, step)
        return step.build()

    def tick(self, now: float, *, limit: int | None = None) -> Step:
        """Time passed: record timeouts and stale checks, then decide what runs now.

        ``limit`` caps dispatches per tick; the rest stay due for the next tick.
        """
        step = _StepBuilder()
        for status in list(self._zones.values()):
            if status.health is ZoneHealth.WAITING:
                self._set_zone(advance(status, online=None, now=now, grace=self.worker_grace), step)
        for gone in self.scheduler.expired(now):
            output = f"timed out: no result within {gone.deadline - gone.dispatched_at:g}s"
            self._record(gone.key, _unknown(output), now, step)
        for key, silence in self.scheduler.stale(now):
            # Silence that a missing worker explains is not news: the zone says it once.
            pool = self.scheduler.record(key).pool
            if self.zone_has_worker(pool) and not self._statuses[key].not_run:
                outcome = _unknown(f"stale: no result for {silence:.0f}s")
                self._transition(key, outcome, now, step, stale=True)
        for decision in self.scheduler.due(now, limit):
            zone = decision.pool
            health = self._zones[zone].health
            if health is ZoneHealth.ONLINE:
                step.dispatch.append(decision)
            elif health is ZoneHealth.WAITING:
                self.scheduler.defer(decision.key, self._zones[zone].since + self.worker_grace)
                self._held.setdefault(zone, set()).add(decision.key)
            else:
                self._held.get(zone, set()).discard(decision.key)
                self.scheduler.accept(decision.key, decision.token)
                self._not_run(decision.key, no_worker_reason(zone), now, step)
        return step.build()

    def record_result(self, key: str, token: int, outcome: CheckOutcome, now: float) -> Step:
        """A worker's result for dispatch ``token``; a late or unknown one is ignored (empty)."""
        if not self.scheduler.accept(key, token):
            return Step()
        step = _StepBuilder()
        self._record(key, outcome, now, step)
        return step.build()

    def not_run(self, key: str, token: int, reason: str, now: float) -> Step:
        """Dispatch ``token`` was not run: no worker could take it, or its worker left with
        it and no peer could. The check keeps its state, marked stale with ``reason``."""
        if not self.scheduler.accept(key, token):
            return Step()
        step = _StepBuilder()
        self._not_run(key, reason, now, step)
        return step.build()

    def check_now(self, key: str, now: float) -> bool:
        """Run a check at the next tick instead of its slot; False if unknown or in flight."""
        if key not in self.scheduler:
            return False
        return self.scheduler.run_now(key, now)

    def zone_online(self, zone: str, now: float) -> Step:
        """The zone has a live worker: checks held back for it run at their next slot."""
        step = _StepBuilder()
        self._track_zone(zone, now, step)
        self._set_zone(advance(self._zones[zone], online=True, now=now, grace=0), step)
        for key in self._held.pop(zone, ()):
            if key in self.scheduler and self.scheduler.in_flight(key) is None:
                self.scheduler.defer(key, now)
        return step.build()

    def zone_offline(self, zone: str, now: float) -> Step:
        """The zone's last worker left; its checks wait ``worker_grace``, then are not run.

        Dispatches in flight there are left to their deadlines: the job layer may still
        deliver them to a worker that reconnects.
        """
        step = _StepBuilder()
        status = self._zones.get(zone)
        if status is not None:
            self._set_zone(advance(status, online=False, now=now, grace=0), step)
        return step.build()

    # --- internals -------------------------------------------------------------------------

    def _record(self, key: str, outcome: CheckOutcome, now: float, step: _StepBuilder) -> None:
        status = self._transition(key, outcome, now, step)
        self.scheduler.completed(key, status, now)

    def _not_run(self, key: str, reason: str, now: float, step: _StepBuilder) -> None:
        status = self._statuses[key]
        if status.not_run != reason or not status.stale:
            status = self._statuses[key] = status.evolve(stale=True, not_run=reason)
            step.statuses[key] = status
        self.scheduler.completed(key, status, now, fresh=False)

    def _track_zone(self, zone: str, now: float, step: _StepBuilder) -> None:
        if zone not in self._zones:
            self._zones[zone] = step.zones[zone] = waiting(zone, now)

    def _set_zone(self, status: ZoneStatus, step: _StepBuilder) -> None:
        if self._zones.get(status.zone) is not status:
            self._zones[status.zone] = step.zones[status.zone] = status

    def _transition(
        self,
        key: str,
        outcome: CheckOutcome,
        now: float,
        step: _StepBuilder,
        *,
        stale: bool = False,
    ) -> CheckStatus:
        record = self.scheduler.record(key)
        before = self._statuses[key]
        transition = apply(
            before,
            outcome,
            max_attempts=self.scheduler.timing(key).max_attempts,
            now=now,
            host_problem=record.service is not None and self._host_problem(record.host),
            stale=stale,
        )
        status = self._statuses[key] = transition.status
        step.statuses[key] = status
        if transition.change is not None:
            step.changes.append(transition.change)
        if record.service is None:
            hosts = {record.host}
            if raw_host_state(before) is not raw_host_state(status):
                hosts.update(self._graph.children(record.host))
            self._refresh_hosts(hosts, now, step)
        return status

    def _host_problem(self, host: str) -> bool:
        current = self._hosts.get(host)
        return current is not None and current.state.is_problem

    def _host_check(self, host: str) -> CheckStatus | None:
        keys = self._by_host.get(host)
        return self._statuses.get(host) if keys is not None and host in keys else None

    def _refresh_hosts(self, hosts: Iterable[str], now: float, step: _StepBuilder) -> None:
        """Re-resolve hosts; on a change, record it and re-flag the services on the host."""

        def raw(name: str) -> HostState:
            return raw_host_state(self._host_check(name))

        for host in hosts:
            check = self._host_check(host)
            state = self._graph.state(host, raw)
            before = self._hosts.get(host) or HostStatus.initial(host, now)
            after, change = host_transition(
                before,
                state=state,
                state_type=check.state_type if check is not None else StateType.HARD,
                output=check.output if check is not None else "",
                now=now,
            )
            if host in self._hosts and after == before:
                continue
            self._hosts[host] = step.hosts[host] = after
            if change is not None:
                step.host_changes.append(change)
            problem = after.state.is_problem
            for key in self._by_host.get(host, ()):
                status = self._statuses[key]
                if key != host and status.host_problem is not problem:
                    status = self._statuses[key] = status.evolve(host_problem=problem)
                    step.statuses[key] = status

    def _index(self, record: CheckRecord) -> None:
        self._by_host.setdefault(record.host, set()).add(record.key)
        if record.service is None:
            self._graph.set(record.host, record.spec.get("parents") or ())

    def _unindex(self, record: CheckRecord) -> None:
        keys = self._by_host.get(record.host)
        if keys is not None:
            keys.discard(record.key)
            if not keys:
                del self._by_host[record.host]
        if record.service is None:
            self._graph.discard(record.host)


def _unknown(output: str) -> CheckOutcome:
    return CheckOutcome(state=CheckState.UNKNOWN, output=output)
