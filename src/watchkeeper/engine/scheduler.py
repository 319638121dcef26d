"""When each check runs: a heap of due times, in-flight tracking, deadlines and freshness.

Every check has a fixed *phase* inside its interval, a stable hash of its key: it runs at
``phase + n * interval`` seconds on the engine's clock. So first runs after a start are
spread over the interval (no thundering herd), a restart keeps each check at the same second
of its cycle, and tests are deterministic. A SOFT problem is rechecked ``retry_interval``
after its result; once it settles (OK or HARD) the check goes back to its phase, at least
half an interval after the run it follows so it never runs twice in quick succession.

Invariants, which keep an idle or overloaded manager bounded:

* a check is either queued once (one live heap entry) or in flight once, never both;
* a dispatch carries a token; only the result for the token in flight is accepted, so a
  late result after a timeout cannot count twice;
* superseded heap entries are skipped lazily and the heaps are rebuilt once they hold more
  than twice the live entries, so memory stays O(checks).

All work is O(k log n) for k checks due, expired or stale, none of it O(n) per tick.
"""

from __future__ import annotations

import hashlib
import heapq
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from watchkeeper.document.normalize import (
    DEFAULT_INTERVAL,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_RETRY_INTERVAL,
    DEFAULT_TIMEOUT,
    CheckRecord,
)
from watchkeeper.engine.statemachine import CheckStatus

#: Seconds a dispatch may exceed its check's timeout (transport, queueing) before it is
#: declared timed out.
DEFAULT_DEADLINE_GRACE = 5.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Timing:
    """The scheduling settings of one check, in seconds, read from its resolved spec."""

    interval: float
    retry_interval: float
    timeout: float
    max_attempts: int

    def __post_init__(self) -> None:
        if min(self.interval, self.retry_interval, self.timeout) <= 0 or self.max_attempts < 1:
            raise ValueError(f"invalid check timing: {self}")

    @classmethod
    def from_record(cls, record: CheckRecord) -> Timing:
        spec = record.spec
        return cls(
            interval=float(spec.get("interval", DEFAULT_INTERVAL.total_seconds())),
            retry_interval=float(
                spec.get("retry_interval", DEFAULT_RETRY_INTERVAL.total_seconds())
            ),
            timeout=float(spec.get("timeout", DEFAULT_TIMEOUT.total_seconds())),
            max_attempts=int(spec.get("max_attempts", DEFAULT_MAX_ATTEMPTS)),
        )

    @property
    def freshness(self) -> float:
        """Silence after which a check is stale: two missed runs plus one timeout.

        One late run is normal under load; two in a row means results are not arriving.
        """
        return 2 * max(self.interval, self.retry_interval) + self.timeout


@dataclass(frozen=True, slots=True, kw_only=True)
class DispatchDecision:
    """Run this check now; expect its result (quoting ``token``) before ``deadline``."""

    key: str
    zone: str
    #: Who may run it: the zone, or ``agent:HOST`` for an agent check (`CheckRecord.pool`).
    pool: str
    token: int
    #: When the schedule wanted it to run; ``dispatched_at`` is later under load.
    planned_at: float
    dispatched_at: float
    #: ``dispatched_at + timeout + grace``: after this the engine records a timeout.
    deadline: float
    check: CheckRecord

    def log_context(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "zone": self.zone,
            "token": self.token,
            "lag": round(self.dispatched_at - self.planned_at, 3),
        }


def spread(key: str, span: float) -> float:
    """A stable offset in ``[0, span)`` for a key: the same on every start and machine."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 * span


def next_slot(at: float, phase: float, interval: float) -> float:
    """The first time ``>= at`` of the form ``phase + n * interval``."""
    slot = phase + math.ceil((at - phase) / interval) * interval
    return slot + interval if slot < at else slot


@dataclass(slots=True)
class _Entry:
    record: CheckRecord
    timing: Timing
    phase: float
    #: Heap sequence of the live due entry; None while in flight (or unscheduled).
    queued: int | None = None
    due: float = 0.0
    flight: DispatchDecision | None = None
    fresh_since: float = 0.0
    fresh_until: float = 0.0
    fresh_seq: int = 0


class Scheduler:
    """Due times, dispatches and freshness of a set of checks; no state machine, no I/O."""

    def __init__(self, *, deadline_grace: float = DEFAULT_DEADLINE_GRACE) -> None:
        self.deadline_grace = deadline_grace
        self._entries: dict[str, _Entry] = {}
        self._due: list[tuple[float, int, str]] = []
        self._deadlines: list[tuple[float, int, str]] = []
        self._fresh: list[tuple[float, int, str]] = []
        self._seq = 0

    # --- the set of checks -----------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def record(self, key: str) -> CheckRecord:
        return self._entries[key].record

    def timing(self, key: str) -> Timing:
        return self._entries[key].timing

    def next_due(self, key: str) -> float | None:
        """When the check is queued to run; None while it is in flight."""
        entry = self._entries[key]
        return None if entry.queued is None else entry.due

    def in_flight(self, key: str) -> DispatchDecision | None:
        return self._entries[key].flight

    def load(self, records: Iterable[CheckRecord], now: float) -> None:
        """First start: every check queued at its phase, so first runs spread over intervals."""
        for record in records:
            self.add(record, now)

    def add(self, record: CheckRecord, now: float, *, retrying: bool = False) -> None:
        """Queue a new check (``retrying``: a restored SOFT problem, rechecked sooner)."""
        timing = Timing.from_record(record)
        entry = _Entry(record=record, timing=timing, phase=spread(record.key, timing.interval))
        self._entries[record.key] = entry
        self._queue(entry, self._first_due(entry, now, retrying))
        self._arm(entry, now)

    def update(self, record: CheckRecord, now: float, *, retrying: bool = False) -> None:
        """A changed check: new settings, requeued at its (possibly new) phase.

        A check in flight keeps running; its result schedules it with the new settings.
        With the interval unchanged, a check waiting for its slot keeps that slot.
        """
        entry = self._entries[record.key]
        entry.record, entry.timing = record, Timing.from_record(record)
        entry.phase = spread(record.key, entry.timing.interval)
        if entry.flight is None:
            self._queue(entry, self._first_due(entry, now, retrying))
        self._arm(entry, entry.fresh_since)

    def run_now(self, key: str, now: float) -> bool:
        """Queue a check to run at ``now`` (an operator's "check now", a re-check after a
        remediation); False when it is in flight already, whose result is as good."""
        entry = self._entries[key]
        if entry.flight is not None:
            return False
        self._queue(entry, now)
        return True

    def remove(self, key: str) -> None:
        """Forget a check; its heap entries die lazily, a late result is not accepted."""
        self._entries.pop(key, None)

    # --- dispatch and results --------------------------------------------------------------

    def due(self, now: float, limit: int | None = None) -> list[DispatchDecision]:
        """Checks due by ``now`` (at most ``limit``), now in flight; the rest stay queued."""
        out: list[DispatchDecision] = []
        while self._due and self._due[0][0] <= now and (limit is None or len(out) < limit):
            planned, seq, key = heapq.heappop(self._due)
            entry = self._entries.get(key)
            if entry is None or entry.queued != seq:
                continue
            self._seq += 1
            decision = DispatchDecision(
                key=key,
                zone=entry.record.zone,
                pool=entry.record.pool,
                token=self._seq,
                planned_at=planned,
                dispatched_at=now,
                deadline=now + entry.timing.timeout + self.deadline_grace,
                check=entry.record,
            )
            entry.queued, entry.flight = None, decision
            heapq.heappush(self._deadlines, (decision.deadline, decision.token, key))
            out.append(decision)
        self._compact()
        return out

    def accept(self, key: str, token: int) -> bool:
        """A result arrived for dispatch ``token``: True (and no longer in flight) if current."""
        entry = self._entries.get(key)
        if entry is None or entry.flight is None or entry.flight.token != token:
            return False
        entry.flight = None
        return True

    def expired(self, now: float) -> list[DispatchDecision]:
        """Dispatches whose deadline passed with no result; they are no longer in flight.

        The caller records a timeout for each and then calls `completed`, so a check whose
        worker vanished is rechecked instead of waiting forever.
        """
        out: list[DispatchDecision] = []
        while self._deadlines and self._deadlines[0][0] <= now:
            _, token, key = heapq.heappop(self._deadlines)
            entry = self._entries.get(key)
            if entry is not None and entry.flight is not None and entry.flight.token == token:
                out.append(entry.flight)
                entry.flight = None
        return out

    def defer(self, key: str, not_before: float) -> None:
        """Requeue a check at its first phase slot from ``not_before``, taking back its dispatch.

        For a dispatch that was not sent (its zone has no worker yet): on its phase, checks
        held back together are released spread out, not all at once.
        """
        entry = self._entries[key]
        entry.flight = None
        self._queue(entry, next_slot(not_before, entry.phase, entry.timing.interval))

    def completed(self, key: str, status: CheckStatus, now: float, *, fresh: bool = True) -> float:
        """A result was recorded: queue the next run and restart the freshness clock.

        A SOFT problem is retried ``retry_interval`` after now; anything else returns to its
        phase, at least half an interval after the run it follows. ``fresh`` False (a run
        that did not happen) queues the next run but leaves the freshness clock running.
        """
        entry = self._entries[key]
        if entry.flight is not None:
            raise RuntimeError(f"{key} is in flight; accept its result first")
        timing = entry.timing
        if status.retrying:
            due = now + timing.retry_interval
        else:
            due = next_slot(max(now, entry.due + timing.interval / 2), entry.phase, timing.interval)
        self._queue(entry, due)
        if fresh:
            self._arm(entry, now)
        return due

    def stale(self, now: float) -> list[tuple[str, float]]:
        """Checks with no result for longer than their freshness, with the seconds of silence.

        Each is reported once per freshness period (its clock restarts), so a check that
        stays silent goes on counting attempts instead of being reported on every tick.
        """
        out: list[tuple[str, float]] = []
        while self._fresh and self._fresh[0][0] <= now:
            _, seq, key = heapq.heappop(self._fresh)
            entry = self._entries.get(key)
            if entry is None or entry.fresh_seq != seq:
                continue
            if entry.flight is not None:
                # Its result, or its timeout once `expired` sees it, comes first; look again
                # later (strictly later, or this loop would never end).
                later = max(now, entry.flight.deadline) + entry.timing.timeout
                self._arm(entry, entry.fresh_since, until=later)
                continue
            out.append((key, now - entry.fresh_since))
            self._arm(entry, now)
        self._compact()
        return out

    def heap_sizes(self) -> tuple[int, int, int]:
        """Entries in the due, deadline and freshness heaps, live or superseded (for tests)."""
        return len(self._due), len(self._deadlines), len(self._fresh)

    # --- internals -------------------------------------------------------------------------

    def _first_due(self, entry: _Entry, now: float, retrying: bool) -> float:
        if retrying:
            return now + spread(entry.record.key, entry.timing.retry_interval)
        return next_slot(now, entry.phase, entry.timing.interval)

    def _queue(self, entry: _Entry, due: float) -> None:
        self._seq += 1
        entry.queued, entry.due = self._seq, due
        heapq.heappush(self._due, (due, self._seq, entry.record.key))

    def _arm(self, entry: _Entry, since: float, *, until: float | None = None) -> None:
        self._seq += 1
        entry.fresh_since, entry.fresh_seq = since, self._seq
        entry.fresh_until = since + entry.timing.freshness if until is None else until
        heapq.heappush(self._fresh, (entry.fresh_until, self._seq, entry.record.key))

    def _compact(self) -> None:
        """Drop superseded heap entries once they outnumber the live ones."""
        limit = 2 * len(self._entries) + 64
        if len(self._due) > limit:
            self._due = [
                (e.due, e.queued, k) for k, e in self._entries.items() if e.queued is not None
            ]
            heapq.heapify(self._due)
        if len(self._fresh) > limit:
            self._fresh = [(e.fresh_until, e.fresh_seq, k) for k, e in self._entries.items()]
            heapq.heapify(self._fresh)
        if len(self._deadlines) > limit:
            self._deadlines = [
                (e.flight.deadline, e.flight.token, k)
                for k, e in self._entries.items()
                if e.flight is not None
            ]
            heapq.heapify(self._deadlines)
