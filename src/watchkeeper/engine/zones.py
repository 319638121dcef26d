"""Whether each zone has a worker: a zone's health, as the engine decides it.

    ONLINE ──last worker leaves──▶ WAITING ──worker_grace passes──▶ OFFLINE
      ▲                               │                                │
      └──────── a worker connects ────┴────────────────────────────────┘

A zone (a check's *pool*: its zone, or ``agent:HOST`` for an agent's checks) is ONLINE
while a connected worker can serve it. When its last worker leaves it is WAITING: its
due checks are held for ``worker_grace`` seconds, so a worker that redials (a restart,
a dropped link) loses nothing. Past the grace it is OFFLINE: a problem of its own (an
alarm, a log line, a gauge), and its checks are *not run*: each keeps its last state,
marked stale with the reason, since no worker being there says nothing about the hosts
and services the checks watch. At the engine's start, and when an import brings a new
zone, the zone is WAITING with no worker lost yet.

Pure values and one pure transition function; the `Engine` holds the statuses.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from watchkeeper.jobs.pools import pool_agent


class ZoneHealth(enum.Enum):
    """Whether a zone's checks can run."""

    #: A connected worker serves it.
    ONLINE = "online"
    #: No worker, for less than the grace: its due checks are held.
    WAITING = "waiting"
    #: No worker past the grace: its checks are not run; a problem of its own.
    OFFLINE = "offline"


@dataclass(frozen=True, slots=True, kw_only=True)
class ZoneStatus:
    """One zone's health and since when; times on the engine's clock."""

    #: The pool name: a zone, or ``agent:HOST``.
    zone: str
    health: ZoneHealth
    #: When the zone entered this health.
    since: float
    #: Since when it has had no worker (through WAITING and OFFLINE); None while ONLINE.
    no_worker_since: float | None = None
    #: A worker served it since the engine started: WAITING then means one was lost.
    had_worker: bool = False

    @property
    def is_problem(self) -> bool:
        return self.health is ZoneHealth.OFFLINE

    @property
    def agent(self) -> str | None:
        """The host whose agent this pool is, or None for a zone."""
        return pool_agent(self.zone)

    def log_context(self) -> dict[str, Any]:
        return {"zone": self.zone, "health": self.health.value, "since": self.since}


def waiting(zone: str, now: float) -> ZoneStatus:
    """A zone the engine has not seen a worker for yet (at start, or new in an import)."""
    return ZoneStatus(zone=zone, health=ZoneHealth.WAITING, since=now, no_worker_since=now)


def advance(status: ZoneStatus, *, online: bool | None, now: float, grace: float) -> ZoneStatus:
    """The zone's next status: a worker came (``online`` True), left (False), or time passed.

    Returns ``status`` itself when nothing changes.
    """
    health = status.health
    if online is True:
        if health is ZoneHealth.ONLINE:
            return status
        return ZoneStatus(zone=status.zone, health=ZoneHealth.ONLINE, since=now, had_worker=True)
    if online is False:
        if health is not ZoneHealth.ONLINE:
            return status
        return ZoneStatus(
            zone=status.zone,
            health=ZoneHealth.WAITING,
            since=now,
            no_worker_since=now,
            had_worker=True,
        )
    if health is ZoneHealth.WAITING and now >= status.since + grace:
        return ZoneStatus(
            zone=status.zone,
            health=ZoneHealth.OFFLINE,
            since=now,
            no_worker_since=status.no_worker_since,
            had_worker=status.had_worker,
        )
    return status
