"""The alarm book: one alarm per problem, and who hears about it.

    StateChange / HostStateChange (hard) ──▶ state alarm of a check key
    MetricSignal (thresholds)            ──▶ metric alarm of (check key, metric)
    ZoneStatus (OFFLINE / ONLINE)        ──▶ zone alarm of ``zone:NAME``
    CheckStatus (each new result)        ──▶ flap detection, deferred PROBLEMs
    tick(now)                            ──▶ downtimes start/end, ack expiry, REMINDERs
                                             │
                                             └──▶ Notify(Notification)

An alarm opens on a HARD problem (a host on a hard DOWN or UNREACHABLE), follows later hard
state changes as its ``state`` and resolves on recovery. A problem that comes back after
its recovery is a *new* alarm with a new id: the resolved alarm is the record of one
episode (when it began, who acknowledged it, how long it lasted), and a sticky
acknowledgement of last night's outage must not silence today's.

A PROBLEM goes out when the alarm opens or changes state, unless something holds it: a
downtime, flapping, or parent/child suppression (a service on a host that is DOWN or
UNREACHABLE, and an UNREACHABLE host, page nobody: their problem belongs upstream). A held
PROBLEM is sent at the check's next result once nothing holds it, as Nagios considers
notifications on check results (so a host's recovery does not page for each of its services
before they are checked again). A RECOVERY goes out only when the PROBLEM did. Metric
alarms from threshold breaches are records for operators and remediation and do not page
(the thresholds already set the check's state, whose alarm does); no-data alarms page.

A zone that has had no worker past the engine's grace is a problem of its own: its checks
cannot run, and they keep their last states rather than page for hosts and services that
may be fine. Its alarm (state OFFLINE) tells the channels of the zone's checks, whoever
would hear of those checks' problems, and resolves with a RECOVERY (ONLINE) when a worker
connects. An import that leaves the zone without checks resolves it quietly. A host's
agent is a zone of one (pool ``agent:HOST``): its alarm belongs to that host, so the host's
downtime covers it and a DOWN host holds it, as it holds the host's services.

The book is pure: time comes in as ``now`` (epoch seconds) and notifications leave through
the `Notify` callable, which only queues. Persisting is the caller's: `take_changes`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from watchkeeper.alarms.flapping import FlapChange, FlapDetector, FlapSettings
from watchkeeper.alarms.thresholds import MetricSignal, SignalKind
from watchkeeper.alarms.values import (
    Acknowledgement,
    Alarm,
    AlarmEvent,
    AlarmKind,
    AlarmNotFound,
    AlarmRequestError,
    BookChanges,
    Downtime,
    EventKind,
    NothingToAcknowledge,
    key_zone,
    zone_key,
)
from watchkeeper.document.normalize import CheckRecord
from watchkeeper.engine import (
    CheckStatus,
    HostState,
    HostStateChange,
    HostStatus,
    StateChange,
    StateType,
    ZoneHealth,
    ZoneStatus,
)
from watchkeeper.jobs.pools import no_worker_reason, pool_agent
from watchkeeper.notify.notification import Notification, NotificationKind, Notify

#: Resolved alarms kept in memory for `AlarmBook.alarms`; older ones are in the store only.
RECENT_RESOLVED = 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class _Check:
    """What the book needs of a check's resolved spec."""

    host: str
    service: str | None
    channels: tuple[str, ...] = ()
    renotify: float | None = None
    flapping: FlapSettings = dataclasses.field(default_factory=FlapSettings)

    @classmethod
    def from_record(cls, record: CheckRecord) -> _Check:
        spec = record.spec
        renotify = spec.get("renotify")
        return cls(
            host=record.host,
            service=record.service,
            channels=tuple(spec.get("notifications") or ()),
            renotify=float(renotify) if renotify else None,
            flapping=FlapSettings.from_spec(spec.get("flapping")),
        )

    @classmethod
    def from_key(cls, key: str) -> _Check:
        host, _, service = key.partition("!")
        return cls(host=host, service=service or None)


class AlarmBook:
    """Every open alarm, acknowledgement and downtime; decides who is told what, and when."""

    def __init__(self, notify: Notify, *, next_id: int = 1) -> None:
        self._notify = notify
        self._next_id = next_id
        self._alarms: dict[int, Alarm] = {}
        #: Check key -> metric (None for the state alarm) -> open alarm id.
        self._open: dict[str, dict[str | None, int]] = {}
        self._recent: dict[int, Alarm] = {}
        self._checks: dict[str, _Check] = {}
        #: Zone -> the channels of its checks: who hears that the zone cannot run them.
        self._zones: dict[str, _Check] = {}
        self._keys_by_host: dict[str, set[str]] = {}
        self._hosts: dict[str, HostState] = {}
        self._flaps: dict[str, FlapDetector] = {}
        self._last_check: dict[str, float] = {}
        #: Keys resolved while flapping after a PROBLEM went out: RECOVERY when it stops.
        #: A recovery held while flapping: the resolved alarm and the recovery's output.
        self._owed_recovery: dict[str, tuple[Alarm, str]] = {}
        self._downtimes: dict[int, Downtime] = {}
        self._started: set[int] = set()
        self._dirty: dict[int, Alarm] = {}
        self._events: list[AlarmEvent] = []

    # --- configuration and restart ----------------------------------------------------------

    def load(
        self,
        alarms: Iterable[Alarm],
        downtimes: Iterable[Downtime],
        now: float,
        *,
        next_id: int = 1,
    ) -> None:
        """Restore open alarms and live downtimes saved by the last run; ids resume at
        ``next_id`` (one above the highest saved: resolved alarms keep their ids too).

        Downtimes that already started are not announced again. Flap history is not saved:
        it starts afresh, so restored alarms start not flapping.
        """
        self._next_id = max(self._next_id, next_id)
        for alarm in alarms:
            if not alarm.is_open:
                continue
            alarm = alarm.evolve(flapping=False)
            self._alarms[alarm.id] = alarm
            self._open.setdefault(alarm.key, {})[alarm.metric] = alarm.id
            self._next_id = max(self._next_id, alarm.id + 1)
        for downtime in downtimes:
            if downtime.cancelled_at is None and downtime.end > now:
                self._downtimes[downtime.id] = downtime
                if downtime.start <= now:
                    self._started.add(downtime.id)

    @property
    def next_id(self) -> int:
        return self._next_id

    def configure(self, records: Mapping[str, CheckRecord], now: float) -> None:
        """The running checks after an import (or at start); alarms of vanished ones resolve."""
        gone = [key for key in self._checks if key not in records]
        self._checks = {key: _Check.from_record(record) for key, record in records.items()}
        self._keys_by_host = {}
        channels: dict[str, set[str]] = {}
        for key, check in self._checks.items():
            self._keys_by_host.setdefault(check.host, set()).add(key)
            detector = self._flaps.get(key)
            if detector is not None and detector.configure(check.flapping) is FlapChange.STOP:
                self._flap_stopped(key, None, now)
        for record in records.values():
            channels.setdefault(record.pool, set()).update(self._checks[record.key].channels)
        self._zones = {
            pool: _Check(host=pool_agent(pool) or "", service=None, channels=tuple(sorted(names)))
            for pool, names in channels.items()
        }
        self.remove(gone, now)
        for key in [k for k in self._open if (z := key_zone(k)) is not None and z not in channels]:
            self._resolve(key, None, now, "no check runs in the zone any more", notify=False)

    def remove(self, keys: Iterable[str], now: float) -> None:
        """Checks an import removed: their alarms resolve without a notification."""
        for key in keys:
            for metric in list(self._open.get(key, {})):
                self._resolve(key, metric, now, "the check was removed", notify=False)
            self._flaps.pop(key, None)
            self._last_check.pop(key, None)
            self._owed_recovery.pop(key, None)

    # --- what the engine reports ------------------------------------------------------------

    def state_change(self, change: StateChange, now: float) -> None:
        """A service's state moved; hard changes open, change or resolve its alarm.

        A host check's alarm follows the host's state (`host_change`) instead.
        """
        if self._check(change.key).service is None or not change.hard:
            return
        if change.to_state.is_problem:
            self._raise(change.key, None, change.to_state.name, change.output, now)
        else:
            self._resolve(change.key, None, now, change.output)

    def host_change(self, change: HostStateChange, now: float) -> None:
        """A host's state moved: its services' suppression, and on hard changes its alarm."""
        self._set_host(change.host, change.to_state, now)
        if not change.hard:
            return
        if change.to_state.is_problem:
            self._raise(change.host, None, change.to_state.name, change.output, now)
        else:
            self._resolve(change.host, None, now, change.output)

    def zone_status(self, status: ZoneStatus, now: float) -> None:
        """A zone's (or a host agent's) health: OFFLINE opens its alarm, ONLINE resolves it."""
        key = zone_key(status.zone)
        if status.health is ZoneHealth.OFFLINE:
            since = status.no_worker_since if status.no_worker_since is not None else now
            output = f"{no_worker_reason(status.zone)} for {now - since:.0f}s"
            self._raise(key, None, "OFFLINE", output, now)
        elif status.health is ZoneHealth.ONLINE:
            again = "its agent is connected" if status.agent else "a worker serves it"
            self._resolve(key, None, now, f"{again} again")

    def host_status(self, status: HostStatus, now: float) -> None:
        """A host's current state (any type): services on a host in trouble do not page."""
        self._set_host(status.host, status.state, now)

    def check_status(self, status: CheckStatus, now: float) -> None:
        """A check's status after a new result: flapping, a held PROBLEM, and agreement.

        A service whose status is a hard problem without an alarm gets one, and an alarm
        whose service is OK resolves: the alarms heal from the statuses.
        """
        if status.pending or status.last_check is None:
            return
        if self._last_check.get(status.key) == status.last_check:
            return  # re-flagged (host_problem), not a new result
        self._last_check[status.key] = status.last_check
        key = status.key
        if status.state_type is StateType.HARD or not status.state.is_problem:
            detector = self._flaps.get(key)
            if detector is None:
                detector = self._flaps[key] = FlapDetector(self._check(key).flapping)
            change = detector.record(status.state.value)
            if change is FlapChange.START:
                self._flap_started(key, detector.percent, now)
            elif change is FlapChange.STOP:
                self._flap_stopped(key, status, now)
        alarm_id = self._open.get(key, {}).get(None)
        if self._check(key).service is not None:
            # The status is the truth: a hard problem has an alarm, an OK check none (a
            # restart that lost a batch, or saved statuses the loading turn did not carry).
            if alarm_id is None and status.is_hard_problem:
                self._raise(key, None, status.state.name, status.output, now)
                return
            if alarm_id is not None and not status.state.is_problem:
                self._resolve(key, None, now, status.output)
                return
        if alarm_id is not None:
            self._refresh(self._alarms[alarm_id], now)
            self._problem(self._alarms[alarm_id], now)

    def restore_status(self, status: CheckStatus, now: float) -> None:
        """A saved status at start: make the state alarm agree with it, without news.

        A hard problem without an alarm gets one (its PROBLEM is held until the next
        result); an alarm whose check is OK resolves (with its RECOVERY if it paged).
        """
        if status.last_check is not None:
            self._last_check[status.key] = status.last_check
        if status.pending or self._check(status.key).service is None:
            return
        problem = status.state.name if status.is_hard_problem else None
        self._restore(status.key, problem, not status.is_problem, status.output, now)

    def restore_host(self, status: HostStatus, now: float) -> None:
        """A host's state at start, as `restore_status` for a service."""
        self._hosts[status.host] = status.state
        hard = status.state_type is StateType.HARD
        problem = status.state.name if status.state.is_problem and hard else None
        self._restore(status.host, problem, not status.state.is_problem, status.output, now)

    def metric_signal(self, signal: MetricSignal, now: float) -> None:
        """A threshold breach or clear, or no data, of one metric."""
        if signal.kind is SignalKind.CLEAR:
            self._resolve(signal.key, signal.metric, now, signal.reason)
            return
        self._raise(signal.key, signal.metric, signal.state.name, signal.reason, now)

    # --- operators ----------------------------------------------------------------------------

    def acknowledge(
        self,
        key: str,
        *,
        author: str,
        comment: str,
        now: float,
        sticky: bool = True,
        expires: float | None = None,
    ) -> list[Alarm]:
        """Acknowledge every open alarm of ``key``; tell the channels if the PROBLEM went out."""
        alarms = self._open_alarms(key)
        if not alarms:
            raise NothingToAcknowledge(f"{key} has no open alarm to acknowledge")
        if expires is not None and expires <= now:
            raise AlarmRequestError("expires", "must be in the future")
        ack = Acknowledgement(
            author=author, comment=comment, at=now, sticky=sticky, expires=expires
        )
        done = []
        for alarm in alarms:
            alarm = self._put(alarm.evolve(acknowledgement=ack))
            self._event(alarm, now, EventKind.ACKNOWLEDGED, f"by {author}: {comment}")
            done.append(alarm)
        told = next((a for a in done if a.notified), None)
        if told is not None and self._downtime(told, now) is None:
            details = {"author": author, "comment": comment, "sticky": sticky, "expires": expires}
            self._send(NotificationKind.ACKNOWLEDGEMENT, told, now, details=details)
        return done

    def unacknowledge(self, key: str, now: float) -> list[Alarm]:
        """Remove the acknowledgement of ``key``'s open alarms; reminders resume."""
        alarms = [a for a in self._open_alarms(key) if a.acknowledgement is not None]
        if not alarms:
            raise NothingToAcknowledge(f"{key} has no acknowledged alarm")
        return [self._unack(alarm, now, "removed by an operator") for alarm in alarms]

    def add_downtime(self, downtime: Downtime, now: float) -> None:
        """A scheduled downtime (its id given by the store); starts at once if due."""
        if downtime.cancelled_at is not None or downtime.end <= now:
            return
        self._downtimes[downtime.id] = downtime
        self._downtime_timers(now)

    def cancel_downtime(self, downtime_id: int, now: float) -> Downtime:
        """End a downtime now (or drop a future one); returns it with ``cancelled_at`` set."""
        downtime = self._downtimes.pop(downtime_id, None)
        if downtime is None:
            raise AlarmNotFound(f"no scheduled downtime {downtime_id}")
        cancelled = dataclasses.replace(downtime, cancelled_at=now)
        self._end_downtime(cancelled, now, "cancelled")
        return cancelled

    # --- time -----------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Start and end downtimes, expire acknowledgements, send reminders and held no-data."""
        self._downtime_timers(now)
        for alarm in list(self._alarms.values()):
            ack = alarm.acknowledgement
            if ack is not None and ack.expires is not None and ack.expires <= now:
                alarm = self._unack(alarm, now, "expired")
            if not alarm.pages:
                continue
            if not alarm.notified:
                if alarm.kind is AlarmKind.METRIC:
                    self._problem(alarm, now)  # no results to wait for
                continue
            renotify = self._check(alarm.key).renotify
            last = alarm.last_notified_at or alarm.opened_at
            if renotify is None or alarm.acknowledgement is not None or now - last < renotify:
                continue
            if self._blocked(alarm, now) is None:
                self._send(NotificationKind.REMINDER, alarm, now)

    # --- queries ----------------------------------------------------------------------------

    def silenced(self, key: str, now: float) -> str | None:
        """Why remediation (and notification) must leave ``key`` alone now, or None."""
        check = self._check(key)
        downtime = self._covering(check.host, check.service, now)
        if downtime is not None:
            return f"in downtime {downtime.id}"
        for alarm in self._open_alarms(key):
            if alarm.acknowledgement is not None:
                return f"acknowledged by {alarm.acknowledgement.author}"
        if self._flapping(key):
            return "flapping"
        return self._parent_reason(key, check)

    def alarms(self, *, open_only: bool = True, key: str | None = None) -> list[Alarm]:
        """Open alarms (and recently resolved ones unless ``open_only``), by id."""
        found: Iterable[Alarm] = self._alarms.values()
        if not open_only:
            found = [*found, *self._recent.values()]
        return sorted((a for a in found if key is None or a.key == key), key=lambda a: a.id)

    def get(self, alarm_id: int) -> Alarm | None:
        return self._alarms.get(alarm_id) or self._recent.get(alarm_id)

    def downtimes(self, now: float | None = None) -> list[Downtime]:
        """Scheduled downtimes not yet over (only the active ones when ``now`` is given)."""
        found = self._downtimes.values()
        return sorted((d for d in found if now is None or d.active(now)), key=lambda d: d.id)

    def unknown_target(self, host: str, service: str | None) -> tuple[str, str] | None:
        """(argument, problem) when the running checks have no such host or service."""
        if not self._checks:
            return None  # no configuration yet: nothing to check against
        if host not in self._keys_by_host:
            return "host", f"no host {host!r} in the running configuration"
        if service is not None and f"{host}!{service}" not in self._checks:
            return "service", f"host {host!r} has no service {service!r}"
        return None

    def flapping(self, key: str) -> float | None:
        """The percent state change of ``key`` when it is flapping, else None."""
        detector = self._flaps.get(key)
        return detector.percent if detector is not None and detector.flapping else None

    def take_changes(self) -> BookChanges:
        """Alarms and events to persist since the last call."""
        changes = BookChanges(alarms=tuple(self._dirty.values()), events=tuple(self._events))
        self._dirty, self._events = {}, []
        return changes

    # --- the lifecycle ----------------------------------------------------------------------

    def _raise(
        self,
        key: str,
        metric: str | None,
        state: str,
        output: str,
        now: float,
        *,
        notify: bool = True,
    ) -> None:
        alarm_id = self._open.get(key, {}).get(metric)
        if alarm_id is None:
            if metric is None:
                self._owed_recovery.pop(key, None)  # a new problem: a new PROBLEM instead
            check = self._check(key)
            kind = AlarmKind.STATE if metric is None else AlarmKind.METRIC
            alarm = Alarm(
                id=self._next_id,
                key=key,
                metric=metric,
                kind=AlarmKind.ZONE if key_zone(key) is not None else kind,
                host=check.host,
                service=check.service,
                state=state,
                output=output,
                opened_at=now,
                flapping=self._flapping(key),
            )
            self._next_id += 1
            self._open.setdefault(key, {})[metric] = alarm.id
            alarm = self._put(alarm.evolve(suppressed=self._blocked(alarm, now)))
            self._event(alarm, now, EventKind.OPENED, f"{state}: {output}")
            if notify:
                self._problem(alarm, now)
            return
        alarm = self._alarms[alarm_id]
        if alarm.state == state:
            if alarm.output != output:
                self._put(alarm.evolve(output=output))
            return
        self._event(alarm, now, EventKind.STATE_CHANGED, f"{alarm.state} -> {state}: {output}")
        ack = alarm.acknowledgement
        alarm = self._put(alarm.evolve(state=state, output=output))
        if ack is not None and not ack.sticky:
            alarm = self._unack(alarm, now, "not sticky: the state changed")
        alarm = self._refresh(alarm, now)
        if notify:
            self._problem(alarm, now, again=True)  # a new hard state is news again

    def _resolve(
        self, key: str, metric: str | None, now: float, output: str, *, notify: bool = True
    ) -> None:
        alarm_id = self._open.get(key, {}).pop(metric, None)
        if alarm_id is None:
            return
        if not self._open.get(key):
            self._open.pop(key, None)
        # The alarm keeps the problem's output; the recovery's goes to its event and message.
        alarm = self._alarms.pop(alarm_id).evolve(resolved_at=now)
        self._dirty[alarm.id] = alarm
        self._event(alarm, now, EventKind.RESOLVED, output)
        if notify and alarm.notified and self._downtime(alarm, now) is None:
            if self._flapping(key):
                self._owed_recovery[key] = (alarm, output)
            else:
                alarm = self._send(
                    NotificationKind.RECOVERY, alarm, now, state=_ok(alarm), output=output
                )
        self._recent[alarm.id] = alarm
        while len(self._recent) > RECENT_RESOLVED:
            del self._recent[next(iter(self._recent))]

    def _restore(self, key: str, problem: str | None, ok: bool, output: str, now: float) -> None:
        alarm_id = self._open.get(key, {}).get(None)
        if problem is not None:
            if alarm_id is None:
                # Held until the next result: a restart is not news.
                self._raise(key, None, problem, output, now, notify=False)
            elif self._alarms[alarm_id].state != problem:
                self._put(self._alarms[alarm_id].evolve(state=problem, output=output))
        elif ok and alarm_id is not None:
            self._resolve(key, None, now, output)

    def _problem(self, alarm: Alarm, now: float, *, again: bool = False) -> bool:
        """Send the PROBLEM of an alarm not yet told (``again``: a new state), unless held."""
        if (alarm.notified and not again) or not alarm.pages or alarm.acknowledgement is not None:
            return False
        if self._blocked(alarm, now) is not None:
            return False
        if not self._check(alarm.key).channels:
            return False
        self._send(NotificationKind.PROBLEM, alarm, now)
        return True

    def _unack(self, alarm: Alarm, now: float, why: str) -> Alarm:
        alarm = self._put(alarm.evolve(acknowledgement=None))
        self._event(alarm, now, EventKind.UNACKNOWLEDGED, why)
        return alarm

    # --- what holds notifications -----------------------------------------------------------

    def _blocked(self, alarm: Alarm, now: float) -> str | None:
        downtime = self._downtime(alarm, now)
        if downtime is not None:
            return f"in downtime {downtime.id}"
        if self._flapping(alarm.key):
            return "flapping"
        return self._parent_reason(alarm.key, self._check(alarm.key))

    def _parent_reason(self, key: str, check: _Check) -> str | None:
        state = self._hosts.get(check.host, HostState.UP)
        below_host = check.service is not None or key_zone(key) is not None  # a service, an agent
        if below_host and state.is_problem:
            return f"host {check.host} is {state.name}"
        if check.service is None and state is HostState.UNREACHABLE:
            return f"host {check.host} is UNREACHABLE"
        return None

    def _downtime(self, alarm: Alarm, now: float) -> Downtime | None:
        return self._covering(alarm.host, alarm.service, now)

    def _covering(self, host: str, service: str | None, now: float) -> Downtime | None:
        for downtime in self._downtimes.values():
            if downtime.id in self._started and downtime.covers(host, service):
                return downtime
        return None

    def _flapping(self, key: str) -> bool:
        detector = self._flaps.get(key)
        return detector is not None and detector.flapping

    def _refresh(self, alarm: Alarm, now: float) -> Alarm:
        reason = self._blocked(alarm, now)
        flapping = self._flapping(alarm.key)
        if reason == alarm.suppressed and flapping is alarm.flapping:
            return alarm
        return self._put(alarm.evolve(suppressed=reason, flapping=flapping))

    def _set_host(self, host: str, state: HostState, now: float) -> None:
        if self._hosts.get(host, HostState.UP) is state:
            return
        self._hosts[host] = state
        for alarm in self._alarms_on(host):
            self._refresh(alarm, now)

    # --- flapping ---------------------------------------------------------------------------

    def _flap_started(self, key: str, percent: float, now: float) -> None:
        for alarm in self._open_alarms(key):
            self._refresh(alarm, now)
        self._flap_notice(NotificationKind.FLAPPING_START, key, percent, now)

    def _flap_stopped(self, key: str, status: CheckStatus | None, now: float) -> None:
        for alarm in self._open_alarms(key):
            self._refresh(alarm, now)
        detector = self._flaps.get(key)
        self._flap_notice(
            NotificationKind.FLAPPING_STOP, key, detector.percent if detector else 0.0, now
        )
        owed = self._owed_recovery.pop(key, None)
        if owed is not None and (status is None or not status.state.is_problem):
            alarm, output = owed
            self._send(NotificationKind.RECOVERY, alarm, now, state=_ok(alarm), output=output)

    def _flap_notice(self, kind: NotificationKind, key: str, percent: float, now: float) -> None:
        check = self._check(key)
        if self._covering(check.host, check.service, now) or self._parent_reason(key, check):
            return
        if not check.channels:
            return
        alarm_id = self._open.get(key, {}).get(None)
        self._notify(
            Notification(
                kind=kind,
                key=key,
                host=check.host,
                service=check.service,
                state="FLAPPING" if kind is NotificationKind.FLAPPING_START else "STABLE",
                output=f"percent state change {percent:.1f}%",
                at=now,
                channels=check.channels,
                alarm_id=alarm_id,
                details={"percent_state_change": round(percent, 1)},
            )
        )

    # --- downtimes --------------------------------------------------------------------------

    def _downtime_timers(self, now: float) -> None:
        for downtime in list(self._downtimes.values()):
            if downtime.end <= now:
                del self._downtimes[downtime.id]
                self._end_downtime(downtime, now, "ended")
            elif downtime.start <= now and downtime.id not in self._started:
                self._started.add(downtime.id)
                self._downtime_notice(NotificationKind.DOWNTIME_START, downtime, now)
                for alarm in self._alarms_on(downtime.host):
                    self._refresh(alarm, now)

    def _end_downtime(self, downtime: Downtime, now: float, how: str) -> None:
        if downtime.id not in self._started:
            return
        self._started.discard(downtime.id)
        self._downtime_notice(NotificationKind.DOWNTIME_END, downtime, now, how)
        for alarm in self._alarms_on(downtime.host):
            self._refresh(alarm, now)

    def _downtime_notice(
        self, kind: NotificationKind, downtime: Downtime, now: float, how: str = "started"
    ) -> None:
        keys = [downtime.key] if downtime.service else self._keys_by_host.get(downtime.host, ())
        channels = sorted({c for key in keys for c in self._check(key).channels})
        if not channels:
            return
        self._notify(
            Notification(
                kind=kind,
                key=downtime.key,
                host=downtime.host,
                service=downtime.service,
                state="DOWNTIME",
                output=f"downtime {downtime.id} {how}: {downtime.comment}",
                at=now,
                channels=tuple(channels),
                details={
                    "downtime_id": downtime.id,
                    "author": downtime.author,
                    "comment": downtime.comment,
                    "start": downtime.start,
                    "end": downtime.end,
                },
            )
        )

    # --- bookkeeping ------------------------------------------------------------------------

    def _check(self, key: str) -> _Check:
        found = self._checks.get(key)
        if found is not None:
            return found
        zone = key_zone(key)
        if zone is not None:
            return self._zones.get(zone) or _Check(host="", service=None)
        return _Check.from_key(key)

    def _open_alarms(self, key: str) -> list[Alarm]:
        return [self._alarms[i] for i in self._open.get(key, {}).values()]

    def _alarms_on(self, host: str) -> Iterator[Alarm]:
        return iter([a for a in self._alarms.values() if a.host == host])

    def _put(self, alarm: Alarm) -> Alarm:
        self._alarms[alarm.id] = alarm
        self._dirty[alarm.id] = alarm
        return alarm

    def _event(self, alarm: Alarm, now: float, kind: EventKind, detail: str = "") -> None:
        self._events.append(AlarmEvent(alarm_id=alarm.id, at=now, kind=kind, detail=detail))

    def _send(
        self,
        kind: NotificationKind,
        alarm: Alarm,
        now: float,
        *,
        state: str | None = None,
        details: dict[str, Any] | None = None,
        output: str | None = None,
    ) -> Alarm:
        check = self._check(alarm.key)
        extra = dict(details or {})
        if alarm.metric is not None:
            extra["metric"] = alarm.metric
        self._notify(
            Notification(
                kind=kind,
                key=alarm.key,
                host=alarm.host,
                service=alarm.service,
                state=state or alarm.state,
                output=alarm.output if output is None else output,
                at=now,
                channels=check.channels,
                alarm_id=alarm.id,
                details=extra,
            )
        )
        self._event(alarm, now, EventKind.NOTIFIED, kind.value)
        if kind in (NotificationKind.PROBLEM, NotificationKind.REMINDER):
            alarm = alarm.evolve(notified=True, last_notified_at=now)
        else:
            alarm = alarm.evolve(last_notified_at=now)
        if alarm.is_open:
            return self._put(alarm)
        self._dirty[alarm.id] = alarm
        return alarm


def _ok(alarm: Alarm) -> str:
    if alarm.kind is AlarmKind.ZONE:
        return "ONLINE"
    return "UP" if alarm.kind is AlarmKind.STATE and alarm.service is None else "OK"
