"""The engine: scheduler, state machine and reachability behind one event-handling object.

The manager's single state-changing loop owns one `Engine` and calls one method per event:
`load` at start, `apply_diff` after an import, `tick` on its timer, `record_result` when a
worker reports, `zone_online`/`zone_offline` when workers come and go. Each returns a
`Step`, a value saying what to dispatch, which history entries to keep and which statuses
to save; the loop carries it out. Nothing here reads a clock or does I/O: ``now`` (seconds,
on one monotonic-style clock) comes with every call.

Results the engine makes up itself go through the same state machine as real ones:

* ``timed out: no result within Xs`` when a dispatch passes its deadline;
* ``stale: no result for Xs`` when a check is silent past its freshness (`Timing`);
* ``no worker for zone Z`` when a check falls due in a zone without a live worker. The
  check is not queued anywhere: it gets its UNKNOWN and its next due time, so a dead zone
  costs one result per check per interval and never a growing backlog. A zone is given
  ``worker_grace`` seconds after start (or after losing its last worker) first, so a
  manager restart does not mark everything UNKNOWN while workers reconnect; checks that
  fall due meanwhile are held (not stale, not queued twice) and released on their phases
  when a worker comes, so they do not all run at once.

"Zone" in the liveness methods means a check's *pool* (`CheckRecord.pool`): its zone, or
``agent:HOST`` for an agent check, which only that host's agent can run; such checks say
``no agent connected for host H`` instead.
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

    def __bool__(self) -> bool:
        return bool(self.dispatch or self.statuses or self.hosts or self.removed)


@dataclass(slots=True)
class _StepBuilder:
    dispatch: list[DispatchDecision] = field(default_factory=list)
    changes: list[StateChange] = field(default_factory=list)
    host_changes: list[HostStateChange] = field(default_factory=list)
    statuses: dict[str, CheckStatus] = field(default_factory=dict)
    hosts: dict[str, HostStatus] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)

    def build(self) -> Step:
        return Step(
            dispatch=tuple(self.dispatch),
            changes=tuple(self.changes),
            host_changes=tuple(self.host_changes),
            statuses=tuple(self.statuses.values()),
            hosts=tuple(self.hosts.values()),
            removed=tuple(self.removed),
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
        self._live_zones: set[str] = set()
        self._zone_lost: dict[str, float] = {}
        #: zone -> checks held back while the zone waits for a worker.
        self._held: dict[str, set[str]] = {}
        self._started = 0.0

    # --- reading ---------------------------------------------------------------------------

    @property
    def statuses(self) -> Mapping[str, CheckStatus]:
        return MappingProxyType(self._statuses)

    @property
    def hosts(self) -> Mapping[str, HostStatus]:
        return MappingProxyType(self._hosts)

    def zone_has_worker(self, zone: str) -> bool:
        return zone in self._live_zones

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
        self._started = now
        step = _StepBuilder()
        for record in checks:
            status = restored.get(record.key) or CheckStatus.initial(record.key, now)
            self._statuses[record.key] = status
            self.scheduler.add(record, now, retrying=status.retrying)
            self._index(record)
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
            touched.add(record.host)
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
        for gone in self.scheduler.expired(now):
            output = f"timed out: no result within {gone.deadline - gone.dispatched_at:g}s"
            self._record(gone.key, _unknown(output), now, step)
        for key, silence in self.scheduler.stale(now):
            if self._waiting_for_worker(self.scheduler.record(key).pool, now) is None:
                outcome = _unknown(f"stale: no result for {silence:.0f}s")
                self._transition(key, outcome, now, step, stale=True)
        for decision in self.scheduler.due(now, limit):
            zone = decision.pool
            if zone in self._live_zones:
                step.dispatch.append(decision)
                continue
            grace_end = self._waiting_for_worker(zone, now)
            if grace_end is not None:
                self.scheduler.defer(decision.key, grace_end)
                self._held.setdefault(zone, set()).add(decision.key)
                continue
            self._held.get(zone, set()).discard(decision.key)
            self.scheduler.accept(decision.key, decision.token)
            self._record(decision.key, _unknown(no_worker_reason(zone)), now, step)
        return step.build()

    def record_result(self, key: str, token: int, outcome: CheckOutcome, now: float) -> Step:
        """A worker's result for dispatch ``token``; a late or unknown one is ignored (empty)."""
        if not self.scheduler.accept(key, token):
            return Step()
        step = _StepBuilder()
        self._record(key, outcome, now, step)
        return step.build()

    def check_now(self, key: str, now: float) -> bool:
        """Run a check at the next tick instead of its slot; False if unknown or in flight."""
        if key not in self.scheduler:
            return False
        return self.scheduler.run_now(key, now)

    def zone_online(self, zone: str, now: float) -> Step:
        """The zone has a live worker: checks held back for it run at their next slot."""
        self._live_zones.add(zone)
        self._zone_lost.pop(zone, None)
        for key in self._held.pop(zone, ()):
            if key in self.scheduler and self.scheduler.in_flight(key) is None:
                self.scheduler.defer(key, now)
        return Step()

    def zone_offline(self, zone: str, now: float) -> Step:
        """The zone's last worker left; its checks wait ``worker_grace``, then go UNKNOWN.

        Dispatches in flight there are left to their deadlines: the job layer may still
        deliver them to a worker that reconnects.
        """
        if zone in self._live_zones:
            self._live_zones.discard(zone)
            self._zone_lost[zone] = now
        return Step()

    # --- internals -------------------------------------------------------------------------

    def _record(self, key: str, outcome: CheckOutcome, now: float, step: _StepBuilder) -> None:
        status = self._transition(key, outcome, now, step)
        self.scheduler.completed(key, status, now)

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

    def _waiting_for_worker(self, zone: str, now: float) -> float | None:
        """When a zone without a worker stops waiting for one; None if it has one or gave up."""
        if zone in self._live_zones:
            return None
        grace_end = self._zone_lost.get(zone, self._started) + self.worker_grace
        return grace_end if now < grace_end else None

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
