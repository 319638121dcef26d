"""The telemetry store on SQLite and PostgreSQL: ingest, rollups, retention and queries."""

from __future__ import annotations

import math
import random

import pytest
import sqlalchemy as sa

from watchkeeper import store
from watchkeeper.store import tables
from watchkeeper.telemetry import repository as ts
from watchkeeper.telemetry.rollup import (
    FIVE_MINUTES_MS,
    HOUR_MS,
    Bucket,
    Retention,
    SeriesResult,
    Tier,
    fold_points,
)

#: An hour boundary, in seconds; tests run "now" from here.
NOW = 1_764_000_000.0 - 1_764_000_000.0 % 3600
NOW_MS = int(NOW * 1000)
CPU: ts.SeriesKey = ("web1!load", "load1", "")
TIME: ts.SeriesKey = ("web1!http", "time", "s")


def series(
    key: ts.SeriesKey, start_ms: int, end_ms: int, every_ms: int, seed: int = 1
) -> list[ts.PointIn]:
    rng = random.Random(seed)
    return [(key, at, round(rng.uniform(0, 100), 3)) for at in range(start_ms, end_ms, every_ms)]


Row = tuple[int, int, float, float, float, float]


def as_tuples(buckets: list[Bucket]) -> list[Row]:
    return [(b.start, b.count, b.min, b.max, b.last, round(b.avg, 6)) for b in buckets]


async def stored(db: store.Database, table: sa.Table, series_id: int) -> list[Bucket]:
    c = table.c
    async with db.session() as session:
        rows = await session.execute(
            sa.select(c.bucket, c.samples, c.total, c.minimum, c.maximum, c.latest)
            .where(c.series_id == series_id)
            .order_by(c.bucket)
        )
        return [
            Bucket(start=r[0], count=r[1], sum=r[2], min=r[3], max=r[4], last=r[5]) for r in rows
        ]


async def count(db: store.Database, table: sa.Table) -> int:
    async with db.session() as session:
        return int(await session.scalar(sa.select(sa.func.count()).select_from(table)) or 0)


async def marks(db: store.Database) -> dict[str, int]:
    t = tables.telemetry_rollups
    async with db.session() as session:
        return {tier: at for tier, at in await session.execute(sa.select(t.c.tier, t.c.done_until))}


# --- ingest ------------------------------------------------------------------------


async def test_ingest_registers_series_once_and_reads_raw_points(db: store.Database) -> None:
    ids: dict[ts.SeriesKey, int] = {}
    first = series(CPU, NOW_MS - 60_000, NOW_MS, 10_000) + series(
        TIME, NOW_MS - 60_000, NOW_MS, 30_000
    )
    assert await ts.write_points(db, first, ids) == 8
    assert set(ids) == {CPU, TIME}
    known = dict(ids)
    # A fresh cache finds the same ids; the same instant again replaces the value.
    again: dict[ts.SeriesKey, int] = {}
    assert await ts.write_points(db, [(CPU, NOW_MS - 60_000, -1.0), (CPU, NOW_MS, 7.0)], again) == 2
    assert again == {CPU: known[CPU]}
    assert await count(db, tables.telemetry_series) == 2
    assert await count(db, tables.telemetry_points) == 9

    async with db.session() as session:
        result = await ts.query_series(session, "web1!load", "load1", NOW - 3600, NOW, now=NOW)
        metrics = await ts.list_metrics(session, "web1!http")
        missing = await ts.query_series(session, "web1!load", "nope", NOW - 60, NOW, now=NOW)
    assert result.tier is Tier.RAW and result.step == 0 and result.uom == ""
    assert [p.at for p in result.points] == [NOW - 60 + 10 * i for i in range(7)]
    assert result.points[0].last == -1.0 and result.points[-1].avg == 7.0
    assert [(m.metric, m.uom) for m in metrics] == [("time", "s")]
    assert not missing.found and missing.points == ()


async def test_duplicates_within_a_batch_keep_the_last_and_long_labels_are_skipped(
    db: store.Database,
) -> None:
    long_label = ("web1!load", "x" * (tables.METRIC_LENGTH + 1), "")
    points = [(CPU, NOW_MS, 1.0), (CPU, NOW_MS, 2.0), (long_label, NOW_MS, 3.0)]
    assert await ts.write_points(db, points) == 1
    async with db.session() as session:
        result = await ts.query_series(session, *CPU[:2], NOW - 1, NOW, now=NOW)
    assert [p.last for p in result.points] == [2.0]


async def test_a_new_unit_is_a_new_series_and_queries_read_the_newest(db: store.Database) -> None:
    await ts.write_points(db, [(("c", "time", "ms"), NOW_MS - 1000, 250.0)])
    await ts.write_points(db, [(("c", "time", "s"), NOW_MS, 0.3)])
    async with db.session() as session:
        newest = await ts.query_series(session, "c", "time", NOW - 10, NOW, now=NOW)
        old = await ts.query_series(session, "c", "time", NOW - 10, NOW, uom="ms", now=NOW)
    assert (newest.uom, [p.last for p in newest.points]) == ("s", [0.3])
    assert (old.uom, [p.last for p in old.points]) == ("ms", [250.0])


# --- rollup ------------------------------------------------------------------------


async def test_rollup_matches_brute_force_and_is_idempotent(db: store.Database) -> None:
    ids: dict[ts.SeriesKey, int] = {}
    start = NOW_MS - 3 * HOUR_MS
    cpu = series(CPU, start, NOW_MS, 10_000, seed=1)
    http = series(TIME, start + 7_000, NOW_MS, 60_000, seed=2)
    await ts.write_points(db, cpu + http, ids)

    report = await ts.rollup(db, NOW, delay=60)
    # 5-minute buckets closed 60 s ago: all but the last one; hours: all but the last one.
    assert report.five_minute == 2 * 35 and report.hourly == 2 * 2
    assert await marks(db) == {"5m": NOW_MS - FIVE_MINUTES_MS, "1h": NOW_MS - HOUR_MS}
    for key, points in ((CPU, cpu), (TIME, http)):
        raw = [(at, v) for _, at, v in points]
        five = fold_points([p for p in raw if p[0] < NOW_MS - FIVE_MINUTES_MS], FIVE_MINUTES_MS)
        hours = fold_points([p for p in raw if p[0] < NOW_MS - HOUR_MS], HOUR_MS)
        assert as_tuples(await stored(db, tables.telemetry_5m, ids[key])) == as_tuples(five)
        assert as_tuples(await stored(db, tables.telemetry_1h, ids[key])) == as_tuples(hours)

    before = (
        await stored(db, tables.telemetry_5m, ids[CPU]),
        await stored(db, tables.telemetry_1h, ids[CPU]),
    )
    assert await ts.rollup(db, NOW, delay=60) == ts.RollupReport()  # nothing new closed
    # Forget how far it got: rolling the same buckets up again rewrites the same rows.
    async with db.begin() as session:
        await session.execute(sa.delete(tables.telemetry_rollups))
    again = await ts.rollup(db, NOW, delay=60)
    assert again == report
    after = (
        await stored(db, tables.telemetry_5m, ids[CPU]),
        await stored(db, tables.telemetry_1h, ids[CPU]),
    )
    assert as_tuples(after[0]) == as_tuples(before[0]) and as_tuples(after[1]) == as_tuples(
        before[1]
    )


async def test_a_late_point_is_rolled_up_again(db: store.Database) -> None:
    ids: dict[ts.SeriesKey, int] = {}
    await ts.write_points(db, series(CPU, NOW_MS - 2 * HOUR_MS, NOW_MS, 60_000), ids)
    await ts.rollup(db, NOW)
    late_at = NOW_MS - 2 * HOUR_MS + 30_000  # inside the first, long rolled-up bucket
    await ts.write_points(db, [(CPU, late_at, 1000.0)], ids)
    assert (await marks(db))["5m"] == NOW_MS - 2 * HOUR_MS
    await ts.rollup(db, NOW)
    first_five = (await stored(db, tables.telemetry_5m, ids[CPU]))[0]
    first_hour = (await stored(db, tables.telemetry_1h, ids[CPU]))[0]
    assert first_five.count == 6 and first_five.max == 1000.0
    assert first_hour.count == 61 and first_hour.max == 1000.0


# --- retention ------------------------------------------------------------------------


async def test_retention_per_tier_with_an_injected_clock(db: store.Database) -> None:
    r = Retention(raw=2 * 3600, five_minute=6 * 3600, hourly=24 * 3600)
    ids: dict[ts.SeriesKey, int] = {}
    # A day and a half of points, one a minute; "now" moves on as retention runs.
    points = series(CPU, NOW_MS - 36 * HOUR_MS, NOW_MS, 60_000)
    await ts.write_points(db, points, ids)
    assert await ts.enforce_retention(db, NOW, retention=r) != ts.RetentionReport()  # no marks:
    # the rollup starts at the raw window, so what is older could never be rolled up
    assert await count(db, tables.telemetry_points) == 2 * 60

    await ts.write_points(db, points, ids)  # the whole day and a half again
    async with db.begin() as session:  # as if the rollup had kept up all along
        await session.execute(
            sa.insert(tables.telemetry_rollups),
            [
                {"tier": "5m", "done_until": NOW_MS - 36 * HOUR_MS},
                {"tier": "1h", "done_until": NOW_MS - 36 * HOUR_MS},
            ],
        )
    await ts.rollup(
        db, NOW, retention=Retention(raw=40 * 3600, five_minute=40 * 3600, hourly=40 * 3600)
    )
    assert await count(db, tables.telemetry_5m) == 36 * 12 - 1
    assert await count(db, tables.telemetry_1h) == 35

    report = await ts.enforce_retention(db, NOW, retention=r)
    assert report == ts.RetentionReport(raw=34 * 60, five_minute=30 * 12, hourly=12)
    async with db.session() as session:
        p, f, h = tables.telemetry_points, tables.telemetry_5m, tables.telemetry_1h
        assert await session.scalar(sa.select(sa.func.min(p.c.at))) == NOW_MS - 2 * HOUR_MS
        assert await session.scalar(sa.select(sa.func.min(f.c.bucket))) == NOW_MS - 6 * HOUR_MS
        assert await session.scalar(sa.select(sa.func.min(h.c.bucket))) == NOW_MS - 24 * HOUR_MS
    # An hour later without a rollup run: raw points that are not rolled up yet stay.
    async with db.begin() as session:
        await session.execute(
            sa.update(tables.telemetry_rollups)
            .where(tables.telemetry_rollups.c.tier == "5m")
            .values(done_until=NOW_MS - 2 * HOUR_MS)
        )
    assert (await ts.enforce_retention(db, NOW + 3600, retention=r)).raw == 0


# --- queries ------------------------------------------------------------------------


def brute(points: list[ts.PointIn], width: int, start_ms: int, end_ms: int) -> list[Row]:
    lo = start_ms - start_ms % width
    return as_tuples(fold_points([(at, v) for _, at, v in points if lo <= at <= end_ms], width))


def result_tuples(result: SeriesResult) -> list[Row]:
    return [
        (round(p.at * 1000), p.count, p.min, p.max, p.last, round(p.avg, 6)) for p in result.points
    ]


async def test_queries_pick_the_tier_and_include_the_open_bucket(db: store.Database) -> None:
    ids: dict[ts.SeriesKey, int] = {}
    # Ten days, one point every 5 minutes; the last 4 hours one every 20 s.
    old = series(CPU, NOW_MS - 10 * 24 * HOUR_MS, NOW_MS - 4 * HOUR_MS, FIVE_MINUTES_MS, seed=3)
    recent = series(CPU, NOW_MS - 4 * HOUR_MS, NOW_MS - 20 * 60_000, 20_000, seed=4)
    everything = old + recent
    await ts.write_points(db, everything, ids)
    r = Retention(raw=11 * 24 * 3600, five_minute=30 * 86400, hourly=400 * 86400)
    await ts.rollup(db, NOW - 30 * 60, retention=r)  # rolled up until half an hour ago
    # Points that came in since: the open bucket and those not rolled up yet.
    newest = series(CPU, NOW_MS - 20 * 60_000, NOW_MS + 1, 20_000, seed=5)
    await ts.write_points(db, newest, ids)
    everything += newest
    m = await marks(db)
    assert m["5m"] < NOW_MS - 20 * 60_000 and m["1h"] < m["5m"]

    async with db.session() as session:
        day = await ts.query_series(session, *CPU[:2], NOW - 86400, NOW, now=NOW)
        month = await ts.query_series(session, *CPU[:2], NOW - 30 * 86400, NOW, now=NOW)
        short = await ts.query_series(session, *CPU[:2], NOW - 3600, NOW, now=NOW)
        forced = await ts.query_series(
            session, *CPU[:2], NOW - 3600, NOW, tier=Tier.HOURLY, now=NOW
        )
    assert (day.tier, day.step) == (Tier.FIVE_MINUTE, 300)
    assert (month.tier, month.step) == (Tier.HOURLY, 3600)
    assert short.tier is Tier.RAW and len(short.points) == 180 + 1
    assert forced.tier is Tier.HOURLY and len(forced.points) == 2

    assert result_tuples(day) == brute(everything, FIVE_MINUTES_MS, NOW_MS - 86400_000, NOW_MS)
    assert result_tuples(month) == brute(everything, HOUR_MS, NOW_MS - 30 * 86400_000, NOW_MS)
    # The open bucket (the one holding "now") is there, with the point at "now" in it.
    assert day.points[-1].at == NOW and day.points[-1].count == 1
    assert month.points[-1].at == NOW and month.points[-1].last == newest[-1][2]
    assert math.isclose(
        month.points[-2].avg,
        sum(v for _, at, v in everything if NOW_MS - HOUR_MS <= at < NOW_MS) / 180,
    )


@pytest.mark.parametrize("tier", [Tier.FIVE_MINUTE, Tier.HOURLY])
async def test_rollup_tiers_show_raw_points_before_any_rollup(
    db: store.Database, tier: Tier
) -> None:
    points = series(CPU, NOW_MS - HOUR_MS, NOW_MS, 30_000)
    await ts.write_points(db, points)
    async with db.session() as session:
        result = await ts.query_series(session, *CPU[:2], NOW - 3600, NOW, tier=tier, now=NOW)
    assert result_tuples(result) == brute(points, tier.width_ms, NOW_MS - HOUR_MS, NOW_MS)
