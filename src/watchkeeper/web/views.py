"""Read models of the running manager for the pages and the API: rows, counts, problems.

Pure functions over the web's `ReadModel` port (memory only): the engine's statuses and
check records, the host states, the alarm book's marks (acknowledgements, downtimes,
flapping) and the connected workers. No store query, no clock (``now`` comes in). Each
call is one pass over the checks and builds row objects only for the page it returns, so
a list of 10,000 services stays cheap enough to serve on every request and every live
refresh.

A bad argument (an unknown state or sort) raises `ViewArgumentError` naming it, which the
API turns into a 422.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from watchkeeper.document.normalize import CheckRecord
from watchkeeper.engine import (
    CheckStatus,
    HostStatus,
    StateType,
    ZoneCapacity,
    ZoneHealth,
    ZoneStatus,
    zone_capacity,
)
from watchkeeper.errors import InvalidArgument
from watchkeeper.transport.workers import WorkerInfo
from watchkeeper.web.ports import ReadModel

T = TypeVar("T")

#: Service states, worst last but PENDING (no result yet).
SERVICE_STATES = ("OK", "WARNING", "CRITICAL", "UNKNOWN", "PENDING")
#: Host states; PENDING while the host's own check has no result yet.
HOST_STATES = ("UP", "DOWN", "UNREACHABLE", "PENDING")
#: How `service_rows` may sort: by name; worst first; longest in its state first; newest
#: change first.
SORTS = ("name", "severity", "age", "recent")
_SEVERITY = {"OK": 0, "PENDING": 0, "WARNING": 1, "UNKNOWN": 2, "CRITICAL": 3}


class ViewArgumentError(InvalidArgument):
    """An argument of a read model has a value it does not know."""

    def __init__(self, argument: str, message: str) -> None:
        super().__init__(argument, message)


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceRow:
    """One check: a service on a host, or a host's own check (``service`` None)."""

    key: str
    host: str
    service: str | None
    zone: str
    #: OK WARNING CRITICAL UNKNOWN, or PENDING before the first result.
    state: str
    #: SOFT or HARD.
    state_type: str
    attempt: int
    max_attempts: int
    output: str
    last_check: float | None
    last_state_change: float
    #: When it is queued to run; None while in flight.
    next_check: float | None
    acknowledged: bool
    in_downtime: bool
    flapping: bool
    stale: bool
    #: Why its latest runs did not happen (no worker), or "": state and output are older.
    not_run: str
    host_problem: bool
    #: Why notifications and remediation hold (`AlarmBook.silenced`), or None.
    silenced: str | None
    #: The open alarm of the check (its state alarm first), if any.
    alarm_id: int | None
    #: CRITICAL 3, UNKNOWN 2, WARNING 1, OK and PENDING 0.
    severity: int

    @property
    def is_problem(self) -> bool:
        return self.severity > 0

    @property
    def handled(self) -> bool:
        """Someone knows or nobody needs to: acknowledged, in downtime, or its host is down."""
        return self.acknowledged or self.in_downtime or self.host_problem


@dataclass(frozen=True, slots=True, kw_only=True)
class HostRow:
    """One host of the running configuration (hosts come from their checks)."""

    name: str
    address: str
    zone: str
    labels: dict[str, str]
    #: UP DOWN UNREACHABLE, or PENDING while its own check has no result.
    state: str
    output: str
    last_state_change: float | None
    #: Service state -> how many of its service checks are in it (the host check aside).
    services: dict[str, int]
    #: Whether the host has a host check of its own (else it is UP by definition).
    has_check: bool = False
    in_downtime: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ZoneRow:
    """A zone the running checks are in, with how many workers serve it now."""

    name: str
    hosts: int
    checks: int
    workers_online: int
    #: online, waiting (no worker, within the grace) or offline (its checks are not run).
    health: str
    #: Epoch seconds since it has had no worker; None while it has one.
    no_worker_since: float | None
    #: Its checks whose latest runs did not happen.
    not_run: int
    #: Slots its workers offer now, and how many hold a job (`engine.zone_capacity`).
    capacity: int = 0
    in_use: int = 0
    #: What an operator should know that the health does not say: one worker, no failover.
    warnings: tuple[str, ...] = ()

    @property
    def is_problem(self) -> bool:
        return self.health == ZoneHealth.OFFLINE.value


@dataclass(frozen=True, slots=True, kw_only=True)
class Page(Generic[T]):
    """One page of a filtered list: its items and how many matched in all."""

    items: list[T]
    total: int
    offset: int
    limit: int


@dataclass(slots=True)
class _Marks:
    """What the alarm book says of checks now, gathered once per call."""

    read: ReadModel
    now: float
    #: Check key -> id of its open alarm (the state alarm wins over metric alarms).
    alarm: dict[str, int] = field(default_factory=dict)
    acknowledged: set[str] = field(default_factory=set)
    hosts_down: set[str] = field(default_factory=set)
    services_down: set[tuple[str, str]] = field(default_factory=set)

    @classmethod
    def gather(cls, read: ReadModel, now: float) -> _Marks:
        marks = cls(read=read, now=now)
        for alarm in read.open_alarms():
            if alarm.metric is None or alarm.key not in marks.alarm:
                marks.alarm[alarm.key] = alarm.id
            if alarm.metric is None and alarm.acknowledgement is not None:
                marks.acknowledged.add(alarm.key)
        for downtime in read.active_downtimes(now):
            if downtime.service is None:
                marks.hosts_down.add(downtime.host)
            else:
                marks.services_down.add((downtime.host, downtime.service))
        return marks

    def in_downtime(self, record: CheckRecord) -> bool:
        if record.host in self.hosts_down:
            return True
        return record.service is not None and (record.host, record.service) in self.services_down


def _state(status: CheckStatus) -> str:
    return "PENDING" if status.pending else status.state.name


def _row(read: ReadModel, marks: _Marks, record: CheckRecord, status: CheckStatus) -> ServiceRow:
    key = record.key
    state = _state(status)
    return ServiceRow(
        key=key,
        host=record.host,
        service=record.service,
        zone=record.zone,
        state=state,
        state_type=status.state_type.value.upper(),
        attempt=status.attempt,
        max_attempts=int(record.spec.get("max_attempts") or 1),
        output=status.output,
        last_check=status.last_check,
        last_state_change=status.last_state_change,
        next_check=read.next_due(key),
        acknowledged=key in marks.acknowledged,
        in_downtime=marks.in_downtime(record),
        flapping=read.flapping(key),
        stale=status.stale,
        not_run=status.not_run,
        host_problem=status.host_problem,
        silenced=read.silenced(key, marks.now),
        alarm_id=marks.alarm.get(key),
        severity=_SEVERITY[state],
    )


def _states(argument: str, values: Sequence[str], known: tuple[str, ...]) -> frozenset[str]:
    wanted = frozenset(v.upper() for v in values if v)
    unknown = sorted(wanted - set(known))
    if unknown:
        raise ViewArgumentError(argument, f"unknown {unknown[0]!r}; one of {', '.join(known)}")
    return wanted


def _window(offset: int, limit: int) -> tuple[int, int]:
    return max(0, offset), max(0, limit)


def _sort_key(sort: str) -> Callable[[tuple[CheckRecord, CheckStatus]], Any]:
    if sort == "name":
        return lambda pair: (pair[0].host, pair[0].service or "")
    if sort == "severity":
        return lambda pair: (
            -_SEVERITY[_state(pair[1])],
            pair[1].last_state_change,
            pair[0].key,
        )
    if sort == "age":
        return lambda pair: (pair[1].last_state_change, pair[0].key)
    if sort == "recent":
        return lambda pair: (-pair[1].last_state_change, pair[0].key)
    raise ViewArgumentError("sort", f"unknown {sort!r}; one of {', '.join(SORTS)}")


def service_rows(
    read: ReadModel,
    *,
    now: float,
    q: str | None = None,
    host: str | None = None,
    zone: str | None = None,
    states: Sequence[str] = (),
    problems: bool = False,
    unhandled: bool = False,
    sort: str = "name",
    offset: int = 0,
    limit: int = 100,
) -> Page[ServiceRow]:
    """Checks matching every filter given, sorted, one page of them.

    ``q`` is a case-insensitive substring of the key or the output; ``problems`` keeps
    non-OK checks (PENDING is not a problem); ``unhandled`` keeps the problems that are
    HARD, not acknowledged, not in downtime and not on a host that is itself down.
    ``sort``: ``name`` (host, then service), ``severity`` (worst first, then the oldest
    change first), ``age`` (oldest change first) or ``recent`` (newest change first).
    """
    order = _sort_key(sort)
    wanted = _states("state", states, SERVICE_STATES)
    needle = q.strip().lower() if q else ""
    marks = _Marks.gather(read, now)
    found: list[tuple[CheckRecord, CheckStatus]] = []
    for record, status in read.checks():
        if host is not None and record.host != host:
            continue
        if zone is not None and record.zone != zone:
            continue
        if wanted and _state(status) not in wanted:
            continue
        if (problems or unhandled) and not status.is_problem:
            continue
        if unhandled and (
            status.state_type is not StateType.HARD
            or status.host_problem
            or record.key in marks.acknowledged
            or marks.in_downtime(record)
        ):
            continue
        if needle and needle not in record.key.lower() and needle not in status.output.lower():
            continue
        found.append((record, status))
    found.sort(key=order)
    start, size = _window(offset, limit)
    items = [_row(read, marks, r, s) for r, s in found[start : start + size]]
    return Page(items=items, total=len(found), offset=start, limit=size)


def problems(read: ReadModel, *, now: float, limit: int = 200) -> list[ServiceRow]:
    """The overview's list: what needs someone, first.

    HARD problems before SOFT ones; within each, unhandled (not acknowledged, not in
    downtime, host up) before handled; then by severity, worst first; then the oldest
    change first.
    """
    marks = _Marks.gather(read, now)
    found: list[tuple[tuple[bool, bool, int, float, str], CheckRecord, CheckStatus]] = []
    for record, status in read.checks():
        if not status.is_problem:
            continue
        order = _problem_order(marks, record, status)
        found.append((order, record, status))
    found.sort(key=lambda item: item[0])
    return [_row(read, marks, r, s) for _, r, s in found[: max(0, limit)]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Overview:
    """What the overview shows, from one pass: counts by state, problems first."""

    #: Service checks by state (a host's own check counts in ``hosts``, not here).
    services: dict[str, int]
    hosts: dict[str, int]
    #: Problems that are HARD, not acknowledged, not in downtime, their host up.
    unhandled: int
    #: As `problems` orders them, at most ``limit``.
    problems: list[ServiceRow]
    #: Zones without a worker past the grace: their checks are not run.
    offline_zones: list[ZoneRow]


def overview(read: ReadModel, *, now: float, limit: int = 200) -> Overview:
    """`state_counts`, `host_counts`, the unhandled count and `problems`, in one pass.

    The overview is the page everyone keeps open: one walk over the checks instead of four.
    """
    marks = _Marks.gather(read, now)
    counts = dict.fromkeys(SERVICE_STATES, 0)
    hosts: dict[str, _Host] = {}
    found: list[tuple[tuple[bool, bool, int, float, str], CheckRecord, CheckStatus]] = []
    unhandled = 0
    offline = {
        zone: status
        for zone, status in read.zone_statuses().items()
        if status.is_problem and status.agent is None
    }
    in_offline: dict[str, tuple[set[str], list[int]]] = {z: (set(), [0, 0]) for z in offline}
    for record, status in read.checks():
        entry = hosts.get(record.host)
        if entry is None:  # not setdefault: a _Host per check would cost a quarter of the page
            entry = hosts[record.host] = _Host(record=record)
        if record.service is None:
            entry.check = status
        else:
            counts[_state(status)] += 1
        tally = in_offline.get(record.zone)
        if tally is not None:
            tally[0].add(record.host)
            tally[1][0] += 1
            tally[1][1] += 1 if status.not_run else 0
        if not status.is_problem:
            continue
        order = _problem_order(marks, record, status)
        if not order[0] and not order[1]:
            unhandled += 1
        found.append((order, record, status))
    found.sort(key=lambda item: item[0])
    host_states = dict.fromkeys(HOST_STATES, 0)
    statuses = read.host_statuses()
    for name, entry in hosts.items():
        host_states[_host_state(entry, statuses.get(name))] += 1
    zones = [
        ZoneRow(
            name=zone,
            hosts=len(in_offline[zone][0]),
            checks=in_offline[zone][1][0],
            workers_online=0,
            health=status.health.value,
            no_worker_since=status.no_worker_since,
            not_run=in_offline[zone][1][1],
        )
        for zone, status in sorted(offline.items())
    ]
    return Overview(
        services=counts,
        hosts=host_states,
        unhandled=unhandled,
        problems=[_row(read, marks, r, s) for _, r, s in found[: max(0, limit)]],
        offline_zones=zones,
    )


def _problem_order(
    marks: _Marks, record: CheckRecord, status: CheckStatus
) -> tuple[bool, bool, int, float, str]:
    """SOFT after HARD, handled after unhandled, worst first, then the oldest change."""
    handled = status.host_problem or record.key in marks.acknowledged or marks.in_downtime(record)
    return (
        status.state_type is not StateType.HARD,
        handled,
        -status.state.severity,
        status.last_state_change,
        record.key,
    )


def service_detail(read: ReadModel, key: str, *, now: float) -> ServiceRow | None:
    """One check's row, or None when no such check runs."""
    found = read.check(key)
    if found is None:
        return None
    return _row(read, _Marks.gather(read, now), *found)


def state_counts(read: ReadModel) -> dict[str, int]:
    """How many service checks are in each state (every state present, zeros included).

    A host's own check is counted by `host_counts`, as the host's state, not here.
    """
    counts = dict.fromkeys(SERVICE_STATES, 0)
    for record, status in read.checks():
        if record.service is not None:
            counts[_state(status)] += 1
    return counts


@dataclass(slots=True)
class _Host:
    """A host as its checks describe it, gathered in one pass."""

    record: CheckRecord
    check: CheckStatus | None = None
    services: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SERVICE_STATES, 0))


def _hosts(read: ReadModel) -> dict[str, _Host]:
    hosts: dict[str, _Host] = {}
    for record, status in read.checks():
        entry = hosts.get(record.host)
        if entry is None:
            entry = hosts[record.host] = _Host(record=record)
        if record.service is None:
            entry.check = status
        else:
            entry.services[_state(status)] += 1
    return hosts


def _host_state(entry: _Host, status: HostStatus | None) -> str:
    if entry.check is not None and entry.check.pending:
        return "PENDING"
    if status is not None:
        return status.state.name
    return "UP" if entry.check is None else "PENDING"


def _host_row(name: str, entry: _Host, status: HostStatus | None, *, down: bool) -> HostRow:
    spec = entry.record.spec
    labels = spec.get("labels") or {}
    return HostRow(
        name=name,
        address=str(spec.get("address") or ""),
        zone=entry.record.zone,
        labels={str(k): str(v) for k, v in labels.items()},
        state=_host_state(entry, status),
        output=status.output if status is not None else "",
        last_state_change=status.last_state_change if status is not None else None,
        services=dict(entry.services),
        has_check=entry.check is not None,
        in_downtime=down,
    )


def host_counts(read: ReadModel) -> dict[str, int]:
    """How many hosts are in each host state (every state present, zeros included)."""
    counts = dict.fromkeys(HOST_STATES, 0)
    statuses = read.host_statuses()
    for name, entry in _hosts(read).items():
        counts[_host_state(entry, statuses.get(name))] += 1
    return counts


def host_rows(
    read: ReadModel,
    *,
    now: float,
    q: str | None = None,
    zone: str | None = None,
    states: Sequence[str] = (),
    offset: int = 0,
    limit: int = 100,
) -> Page[HostRow]:
    """Hosts by name matching every filter: ``q`` is a case-insensitive substring of the
    name or the address; ``states`` are host states (UP DOWN UNREACHABLE PENDING)."""
    wanted = _states("state", states, HOST_STATES)
    needle = q.strip().lower() if q else ""
    statuses = read.host_statuses()
    down = {d.host for d in read.active_downtimes(now) if d.service is None}
    rows: list[HostRow] = []
    for name, entry in sorted(_hosts(read).items()):
        if zone is not None and entry.record.zone != zone:
            continue
        if needle and needle not in name.lower():
            address = str(entry.record.spec.get("address") or "")
            if needle not in address.lower():
                continue
        row = _host_row(name, entry, statuses.get(name), down=name in down)
        if wanted and row.state not in wanted:
            continue
        rows.append(row)
    start, size = _window(offset, limit)
    return Page(items=rows[start : start + size], total=len(rows), offset=start, limit=size)


def host_detail(
    read: ReadModel, name: str, *, now: float
) -> tuple[HostRow, list[ServiceRow]] | None:
    """A host with its checks (its own check first, then services by name), or None."""
    entry = _hosts(read).get(name)
    if entry is None:
        return None
    down = any(d.host == name and d.service is None for d in read.active_downtimes(now))
    row = _host_row(name, entry, read.host_statuses().get(name), down=down)
    checks = service_rows(read, now=now, host=name, limit=read.check_count())
    return row, checks.items


#: A zone the engine does not track (a worker's zone without checks): nothing waits on it.
_ONLINE = ZoneStatus(zone="", health=ZoneHealth.ONLINE, since=0.0)


def zone_rows(read: ReadModel) -> list[ZoneRow]:
    """Every zone of the running checks or of a connected worker, by name."""
    hosts: dict[str, set[str]] = {}
    checks: dict[str, int] = {}
    not_run: dict[str, int] = {}
    for record, status in read.checks():
        hosts.setdefault(record.zone, set()).add(record.host)
        checks[record.zone] = checks.get(record.zone, 0) + 1
        if status.not_run:
            not_run[record.zone] = not_run.get(record.zone, 0) + 1
    health = read.zone_statuses()
    pools = zone_capacity(worker_rows(read), health)
    rows = []
    for zone in sorted(hosts.keys() | pools.keys()):
        zone_status = health.get(zone)
        pool = pools.get(zone) or ZoneCapacity(zone=zone, workers=0, capacity=0, in_use=0)
        rows.append(
            ZoneRow(
                name=zone,
                hosts=len(hosts.get(zone, ())),
                checks=checks.get(zone, 0),
                workers_online=pool.workers,
                health=(zone_status or _ONLINE).health.value,
                no_worker_since=None if zone_status is None else zone_status.no_worker_since,
                not_run=not_run.get(zone, 0),
                capacity=pool.capacity,
                in_use=pool.in_use,
                warnings=pool.warnings,
            )
        )
    return rows


def worker_rows(read: ReadModel) -> list[WorkerInfo]:
    """The connected workers (agents included), by name."""
    return list(read.workers())
