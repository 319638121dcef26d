"""Rollup buckets and tier choice: the pure half of the telemetry store.

Every metric of every check is a series kept in three tiers:

    raw points ──(closed 5-minute buckets)──▶ 5-minute tier ──(closed hours)──▶ 1-hour tier
    kept 48 h                                 kept 30 d                          kept 400 d

A bucket holds count, sum, min, max and last of the points in ``[start, start + width)``;
the average is ``sum / count``, so buckets compose exactly: an hour is the fold of its
twelve 5-minute buckets, not an average of averages. Times inside telemetry are integer
milliseconds since the epoch (exact bucket arithmetic, and what the tables store); values
handed out (`SeriesResult`) are float seconds like the rest of the code.

How a query picks its tier (`choose_tier`), so that a graph gets a few hundred to a few
thousand points whatever its range:

* **raw** when the range starts inside the raw window and spans at most `RAW_MAX_SPAN`
  (6 h: a 10-second check gives 2,160 points);
* **5 minutes** when the range starts inside the 5-minute retention and spans at most
  `FIVE_MINUTE_MAX_SPAN` (8 days: 2,304 buckets);
* **1 hour** otherwise (a 30-day graph is 720 buckets, a 400-day one 9,600).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

#: Milliseconds per 5-minute and per 1-hour bucket.
FIVE_MINUTES_MS = 300_000
HOUR_MS = 3_600_000
#: The longest range served from raw points, and from 5-minute buckets (seconds).
RAW_MAX_SPAN = 6 * 3600.0
FIVE_MINUTE_MAX_SPAN = 8 * 86400.0


class Tier(enum.Enum):
    """Where a series' values come from; the value is how the API names it."""

    #: Every point as recorded.
    RAW = "raw"
    #: 5-minute buckets of min / avg / max / last.
    FIVE_MINUTE = "5m"
    #: 1-hour buckets, folded from the 5-minute ones.
    HOURLY = "1h"

    @property
    def width_ms(self) -> int:
        """Bucket width in milliseconds; 0 for raw points."""
        return _WIDTHS[self]


_WIDTHS = {Tier.RAW: 0, Tier.FIVE_MINUTE: FIVE_MINUTES_MS, Tier.HOURLY: HOUR_MS}


@dataclass(frozen=True, slots=True, kw_only=True)
class Retention:
    """How long each tier is kept, in seconds (the issue's defaults)."""

    raw: float = 48 * 3600.0
    five_minute: float = 30 * 86400.0
    hourly: float = 400 * 86400.0

    def __post_init__(self) -> None:
        if not 0 < self.raw <= self.five_minute <= self.hourly:
            raise ValueError(
                "retentions must be positive and not shrink from raw to 5-minute to hourly"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class Bucket:
    """Count, sum, min, max and last of the points in ``[start, start + width)`` (ms)."""

    start: int
    count: int
    sum: float
    min: float
    max: float
    last: float

    @property
    def avg(self) -> float:
        return self.sum / self.count

    @classmethod
    def of_point(cls, start: int, value: float) -> Bucket:
        return cls(start=start, count=1, sum=value, min=value, max=value, last=value)

    def merge(self, later: Bucket) -> Bucket:
        """This bucket and one that follows it in time (``later``'s last wins)."""
        return Bucket(
            start=self.start,
            count=self.count + later.count,
            sum=self.sum + later.sum,
            min=min(self.min, later.min),
            max=max(self.max, later.max),
            last=later.last,
        )


def bucket_start(at: int, width: int) -> int:
    """The start of the bucket of ``width`` ms that holds ``at`` (ms)."""
    return at - at % width


def fold_points(points: Iterable[tuple[int, float]], width: int) -> list[Bucket]:
    """Raw ``(at_ms, value)`` points into buckets of ``width`` ms, in time order.

    Points at the same instant keep their given order, so the later one is ``last``.
    """
    out: dict[int, Bucket] = {}
    for at, value in sorted(points, key=lambda p: p[0]):
        start = bucket_start(at, width)
        point = Bucket.of_point(start, value)
        known = out.get(start)
        out[start] = point if known is None else known.merge(point)
    return list(out.values())


def fold_buckets(buckets: Iterable[Bucket], width: int) -> list[Bucket]:
    """Buckets into wider ones of ``width`` ms (a multiple of theirs), in time order."""
    out: dict[int, Bucket] = {}
    for bucket in sorted(buckets, key=lambda b: b.start):
        start = bucket_start(bucket.start, width)
        moved = Bucket(
            start=start,
            count=bucket.count,
            sum=bucket.sum,
            min=bucket.min,
            max=bucket.max,
            last=bucket.last,
        )
        known = out.get(start)
        out[start] = moved if known is None else known.merge(moved)
    return list(out.values())


def merge_runs(*runs: Iterable[Bucket]) -> list[Bucket]:
    """Buckets of one width from consecutive sources (each later in time than the one before).

    A bucket that straddles two sources (an hour half rolled up, half still raw) is merged.
    """
    out: dict[int, Bucket] = {}
    for run in runs:
        for bucket in run:
            known = out.get(bucket.start)
            out[bucket.start] = bucket if known is None else known.merge(bucket)
    return [out[start] for start in sorted(out)]


def closed_until(now_ms: int, width: int, delay_ms: int = 0) -> int:
    """Buckets of ``width`` starting before this are closed at ``now_ms`` (after ``delay_ms``).

    The delay leaves room for points that arrive a little late (queued, then flushed).
    """
    return bucket_start(now_ms - delay_ms, width)


def choose_tier(start: float, end: float, now: float, retention: Retention) -> Tier:
    """The tier a query for ``[start, end]`` (epoch seconds) reads; see the module docstring."""
    span = end - start
    if start >= now - retention.raw and span <= RAW_MAX_SPAN:
        return Tier.RAW
    if start >= now - retention.five_minute and span <= FIVE_MINUTE_MAX_SPAN:
        return Tier.FIVE_MINUTE
    return Tier.HOURLY


@dataclass(frozen=True, slots=True, kw_only=True)
class SeriesPoint:
    """One point of a graph: a raw point (count 1, all equal) or a bucket; times in seconds."""

    at: float
    count: int
    min: float
    avg: float
    max: float
    last: float

    @classmethod
    def of_bucket(cls, bucket: Bucket) -> SeriesPoint:
        return cls(
            at=bucket.start / 1000,
            count=bucket.count,
            min=bucket.min,
            avg=bucket.avg,
            max=bucket.max,
            last=bucket.last,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class SeriesResult:
    """A series over a time range, from the tier the query picked (or was told)."""

    check_key: str
    metric: str
    #: The series' unit; None when the check has no such metric (``points`` is empty then).
    uom: str | None
    tier: Tier
    start: float
    end: float
    #: Seconds per bucket: 0 for raw points, 300 or 3600 for a rollup tier.
    step: float
    points: tuple[SeriesPoint, ...]

    @property
    def found(self) -> bool:
        return self.uom is not None
