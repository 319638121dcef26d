"""Rollup buckets against a brute-force computation, and how queries pick a tier."""

from __future__ import annotations

import math
from collections import defaultdict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watchkeeper.telemetry.rollup import (
    FIVE_MINUTES_MS,
    HOUR_MS,
    Bucket,
    Retention,
    SeriesPoint,
    Tier,
    bucket_start,
    choose_tier,
    closed_until,
    fold_buckets,
    fold_points,
    merge_runs,
)

T0 = 1_764_000_000_000  # ms, a multiple of an hour
HOUR = 3600.0
DAY = 86400.0

values = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
# Distinct instants: a series holds one value per millisecond.
point_lists = st.dictionaries(
    st.integers(min_value=T0, max_value=T0 + 3 * HOUR_MS), values, min_size=1, max_size=200
).map(lambda d: list(d.items()))


def brute_force(points: list[tuple[int, float]], width: int) -> dict[int, tuple[float, ...]]:
    """Group by bucket the slow, obvious way: (count, min, avg, max, last) per bucket."""
    groups: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for at, value in points:
        groups[at // width * width].append((at, value))
    out: dict[int, tuple[float, ...]] = {}
    for start, members in groups.items():
        vals = [v for _, v in members]
        last = max(members)[1]  # the value at the latest instant
        out[start] = (len(vals), min(vals), sum(vals) / len(vals), max(vals), last)
    return out


def summary(buckets: list[Bucket]) -> dict[int, tuple[float, ...]]:
    return {b.start: (b.count, b.min, b.avg, b.max, b.last) for b in buckets}


def assert_same(got: dict[int, tuple[float, ...]], want: dict[int, tuple[float, ...]]) -> None:
    assert got.keys() == want.keys()
    for start in want:
        g, w = got[start], want[start]
        assert g[0] == w[0] and g[1] == w[1] and g[3] == w[3] and g[4] == w[4]
        assert math.isclose(g[2], w[2], rel_tol=1e-9, abs_tol=1e-6)


@given(point_lists)
def test_five_minute_buckets_match_brute_force(points: list[tuple[int, float]]) -> None:
    buckets = fold_points(points, FIVE_MINUTES_MS)
    assert [b.start for b in buckets] == sorted(b.start for b in buckets)
    assert_same(summary(buckets), brute_force(points, FIVE_MINUTES_MS))


@given(point_lists)
def test_hours_folded_from_five_minute_buckets_equal_hours_from_raw(
    points: list[tuple[int, float]],
) -> None:
    hours = fold_buckets(fold_points(points, FIVE_MINUTES_MS), HOUR_MS)
    assert_same(summary(hours), brute_force(points, HOUR_MS))


@given(point_lists, st.integers(min_value=T0, max_value=T0 + 3 * HOUR_MS))
def test_a_bucket_split_at_any_instant_merges_back(
    points: list[tuple[int, float]], split: int
) -> None:
    """What queries do with a half rolled-up hour: earlier part merged with the later."""
    early = fold_points([p for p in points if p[0] < split], HOUR_MS)
    late = fold_points([p for p in points if p[0] >= split], HOUR_MS)
    assert_same(summary(merge_runs(early, late)), brute_force(points, HOUR_MS))


def test_same_instant_keeps_the_given_order_for_last() -> None:
    (bucket,) = fold_points([(T0, 1.0), (T0, 2.0)], FIVE_MINUTES_MS)
    assert (bucket.count, bucket.last, bucket.avg) == (2, 2.0, 1.5)


def test_bucket_arithmetic() -> None:
    assert bucket_start(T0 + 299_999, FIVE_MINUTES_MS) == T0
    assert bucket_start(T0 + 300_000, FIVE_MINUTES_MS) == T0 + 300_000
    assert closed_until(T0 + 400_000, FIVE_MINUTES_MS, 60_000) == T0 + 300_000
    assert closed_until(T0 + 350_000, FIVE_MINUTES_MS, 60_000) == T0
    point = SeriesPoint.of_bucket(Bucket(start=T0, count=4, sum=10, min=1, max=4, last=2))
    assert (point.at, point.avg) == (T0 / 1000, 2.5)


# --- tier choice -------------------------------------------------------------------------------

NOW = T0 / 1000
R = Retention()


@pytest.mark.parametrize(
    ("start", "end", "tier"),
    [
        (NOW - HOUR, NOW, Tier.RAW),
        (NOW - 6 * HOUR, NOW, Tier.RAW),
        (NOW - 6 * HOUR - 1, NOW, Tier.FIVE_MINUTE),  # too long for raw
        (NOW - 50 * HOUR, NOW - 49 * HOUR, Tier.FIVE_MINUTE),  # short, but raw is gone
        (NOW - 8 * DAY, NOW, Tier.FIVE_MINUTE),
        (NOW - 9 * DAY, NOW, Tier.HOURLY),
        (NOW - 30 * DAY, NOW, Tier.HOURLY),
        (NOW - 31 * DAY, NOW - 30.5 * DAY, Tier.HOURLY),  # short, but 5-minute is gone
        (NOW - 400 * DAY, NOW, Tier.HOURLY),
    ],
)
def test_choose_tier(start: float, end: float, tier: Tier) -> None:
    assert choose_tier(start, end, NOW, R) is tier


def test_choose_tier_follows_the_retention() -> None:
    short = Retention(raw=HOUR, five_minute=DAY, hourly=10 * DAY)
    assert choose_tier(NOW - 2 * HOUR, NOW - HOUR - 1, NOW, short) is Tier.FIVE_MINUTE
    assert choose_tier(NOW - 2 * DAY, NOW - DAY - 1, NOW, short) is Tier.HOURLY


def test_retention_must_not_shrink_towards_coarser_tiers() -> None:
    with pytest.raises(ValueError, match="retentions"):
        Retention(raw=DAY, five_minute=HOUR)
    with pytest.raises(ValueError, match="retentions"):
        Retention(raw=0)
