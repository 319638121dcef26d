"""The lease, as values: how long a leader may act without renewing, and what a beat decides.

PostgreSQL is the arbiter. A leader holds a session advisory lock on one dedicated
connection; the server frees it when that session ends: at once when the process dies (the
socket closes), and after ``idle_session_timeout`` (the lease) when the process freezes.
A frozen leader cannot notice it lost, so it must stop *before* the lock can be freed:
its permission to act ends ``renew_deadline`` after its last successful beat, measured on
the monotonic clock, which keeps running while the process is stopped. A leader that wakes
from a pause longer than that finds itself already fenced, before its first write.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

#: The advisory lock key of the leader (the store's import lock is another key).
LEADER_LOCK_KEY = 0x5741_5443_4C45  # "WATCLE"
DEFAULT_LEASE = 10.0
DEFAULT_HEARTBEAT = 1.0


@dataclass(frozen=True, slots=True)
class LeaseSettings:
    """The lease (the server frees the lock of a session idle that long) and the beat."""

    lease: float = DEFAULT_LEASE
    heartbeat: float = DEFAULT_HEARTBEAT

    def __post_init__(self) -> None:
        if self.heartbeat <= 0:
            raise ValueError(f"heartbeat must be above 0 s, got {self.heartbeat}")
        if self.lease < 3 * self.heartbeat:
            raise ValueError(
                f"lease must be at least 3 heartbeats ({3 * self.heartbeat:g} s), "
                f"got {self.lease:g}"
            )

    @property
    def renew_deadline(self) -> float:
        """Seconds after its last good beat a leader stops: two beats before the lease ends,
        so it has stopped before the server can free its lock."""
        return self.lease - 2 * self.heartbeat

    @property
    def hold_off(self) -> float:
        """Seconds a node that stepped down waits before it contends again: two beats, so
        the others (who try every beat) go first and a deposed leader does not take the
        lock straight back; short, because the leader that deposed it may die too."""
        return 2 * self.heartbeat


class Role(enum.Enum):
    LEADER = "leader"
    STANDBY = "standby"


@dataclass(frozen=True, slots=True)
class Beat:
    """What one heartbeat found: whether it reached the database, and as what."""

    #: The beat's queries succeeded.
    ok: bool
    #: This node holds the advisory lock (after trying for it, on a standby).
    holds_lock: bool = False
    #: The term in the database (the leader's row), 0 when unknown.
    term: int = 0
    #: The node that row names.
    leader: str = ""
    #: Why the beat failed, when it did.
    error: str = ""


@dataclass(frozen=True, slots=True)
class Stay:
    """Nothing changes."""


@dataclass(frozen=True, slots=True)
class Lead:
    """This node won the lock: it bumps the term and takes over."""


@dataclass(frozen=True, slots=True)
class StepDown:
    """This node must stop leader work now (and release the lock if it still has it)."""

    reason: str


Decision = Stay | Lead | StepDown


def decide(
    role: Role, term: int, beat: Beat, *, since_good: float, settings: LeaseSettings
) -> Decision:
    """What a node of ``role`` (leading ``term``) does after ``beat``; ``since_good`` is
    the seconds since its last good beat (monotonic)."""
    if role is Role.STANDBY:
        return Lead() if beat.ok and beat.holds_lock else Stay()
    if not beat.ok:
        if since_good >= settings.renew_deadline:
            return StepDown(
                f"no heartbeat reached the database for {since_good:.1f} s "
                f"(renew deadline {settings.renew_deadline:g} s): {beat.error}"
            )
        return Stay()
    if not beat.holds_lock:
        return StepDown("the leader lock is no longer held by this node's session")
    if beat.term != term:
        return StepDown(f"term {beat.term} belongs to {beat.leader or 'another node'}, not {term}")
    return Stay()


def valid(since_good: float, settings: LeaseSettings) -> bool:
    """Whether a leader whose last good beat was ``since_good`` seconds ago may still act."""
    return since_good < settings.renew_deadline
