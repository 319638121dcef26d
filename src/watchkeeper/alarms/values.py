"""What the alarm book keeps and reports: alarms, acknowledgements, downtimes, events.

Plain immutable values, shared by the book (`lifecycle`), its repository (`alarms.repository`), the
service and the web; the book's decisions live in `lifecycle`.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import Any

from watchkeeper.errors import Conflict, InvalidArgument, NotFound
from watchkeeper.results import CheckState


class AlarmRequestError(InvalidArgument):
    """An operator request is not valid."""

    def __init__(self, argument: str, message: str) -> None:
        super().__init__(argument, message)


class AlarmNotFound(NotFound):
    """No such alarm or downtime."""


class NothingToAcknowledge(Conflict):
    """The check has no open (or no acknowledged) alarm to act on."""


class AlarmKind(enum.Enum):
    """Whose problem an alarm is."""

    #: A check's (or a host's) state: keyed by check key.
    STATE = "state"
    #: One metric of a check (threshold breach or no data): keyed by (check key, metric).
    METRIC = "metric"
    #: A zone without a worker, so its checks cannot run: keyed ``zone:NAME`` (`zone_key`).
    ZONE = "zone"


#: What a zone alarm's key starts with; no host or service name contains a colon.
ZONE_PREFIX = "zone:"


def zone_key(zone: str) -> str:
    """The alarm key of a zone: ``zone:dmz``."""
    return ZONE_PREFIX + zone


def key_zone(key: str) -> str | None:
    """The zone of a zone alarm's key, or None for a check's key."""
    return key[len(ZONE_PREFIX) :] if key.startswith(ZONE_PREFIX) else None


class AlarmPhase(enum.Enum):
    """Where an alarm is in its lifecycle: open -> acknowledged -> resolved."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True, kw_only=True)
class Acknowledgement:
    """Someone is on it: no more notifications for this problem but its recovery.

    Sticky: lasts until the recovery. Not sticky: cleared when the state changes to another
    problem state (WARNING to CRITICAL), as Nagios does. ``expires`` ends it earlier.
    """

    author: str
    comment: str
    at: float
    sticky: bool = True
    expires: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Alarm:
    """One problem of one check (or of one metric of a check), from open to resolved."""

    id: int
    key: str
    #: The metric of a metric alarm; None for a state alarm.
    metric: str | None = None
    kind: AlarmKind = AlarmKind.STATE
    #: The check's host; "" for a zone alarm.
    host: str
    service: str | None = None
    #: CRITICAL, WARNING, UNKNOWN, DOWN, UNREACHABLE (OFFLINE for a zone): the latest
    #: (hard) problem state.
    state: str
    output: str = ""
    opened_at: float
    acknowledgement: Acknowledgement | None = None
    resolved_at: float | None = None
    last_notified_at: float | None = None
    #: A PROBLEM was sent (so its RECOVERY will be).
    notified: bool = False
    #: Why notifications are held now (downtime, flapping, parent): None when they are not.
    suppressed: str | None = None
    flapping: bool = False

    @property
    def phase(self) -> AlarmPhase:
        if self.resolved_at is not None:
            return AlarmPhase.RESOLVED
        return AlarmPhase.OPEN if self.acknowledgement is None else AlarmPhase.ACKNOWLEDGED

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None

    @property
    def pages(self) -> bool:
        """State, zone and no-data alarms notify; threshold-breach alarms do not."""
        return self.kind is not AlarmKind.METRIC or self.state == CheckState.UNKNOWN.name

    @property
    def zone(self) -> str | None:
        """The zone of a zone alarm; None for a check's."""
        return key_zone(self.key) if self.kind is AlarmKind.ZONE else None

    def evolve(self, **changes: Any) -> Alarm:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, slots=True, kw_only=True)
class Downtime:
    """Planned work on a host (with its services) or on one service: notifications hold."""

    id: int
    host: str
    #: None: the host and every service on it.
    service: str | None
    start: float
    end: float
    author: str
    comment: str
    created_at: float
    cancelled_at: float | None = None

    def covers(self, host: str, service: str | None) -> bool:
        return host == self.host and (self.service is None or service == self.service)

    def active(self, now: float) -> bool:
        return self.cancelled_at is None and self.start <= now < self.end

    @property
    def key(self) -> str:
        return self.host if self.service is None else f"{self.host}!{self.service}"


class EventKind(enum.Enum):
    """One step of an alarm's timeline."""

    OPENED = "opened"
    STATE_CHANGED = "state_changed"
    ACKNOWLEDGED = "acknowledged"
    UNACKNOWLEDGED = "unacknowledged"
    #: A notification was handed to the notifier (``detail`` names its kind).
    NOTIFIED = "notified"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True, kw_only=True)
class AlarmEvent:
    alarm_id: int
    at: float
    kind: EventKind
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class BookChanges:
    """What changed since the last `AlarmBook.take_changes`: the latest of each alarm."""

    alarms: tuple[Alarm, ...] = ()
    events: tuple[AlarmEvent, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.alarms or self.events)
