"""Metric series: raw points, 5-minute and 1-hour rollups, retention and graph queries.

    write_points ──▶ telemetry_points (series id, ms, value)       kept `Retention.raw`
    rollup       ──▶ telemetry_5m  (closed 5-minute buckets)       kept `Retention.five_minute`
                 ──▶ telemetry_1h  (hours whose 5-minute buckets are all rolled up)
    enforce_retention deletes by age, tier by tier, never what is not rolled up yet.

Design for ingest speed (the target is 50,000 points/s on SQLite): a series is an integer
id (`telemetry_series`), a point is ``(series_id, at_ms, value)`` in a table whose primary
key *is* the table (WITHOUT ROWID on SQLite), and a batch is one ``executemany`` on SQLite
or one ``INSERT ... SELECT FROM unnest(arrays)`` on PostgreSQL, in one transaction.

Rollup is incremental: ``telemetry_rollups`` holds, per tier, the time before which every
bucket is written (``done_until``). A run rolls up the closed buckets after it with
``INSERT ... SELECT ... GROUP BY ... ON CONFLICT DO UPDATE`` (a re-run rewrites the same
rows: idempotent) and moves it on in the same transaction. A point written behind the mark
(late) pulls the mark back to its bucket, so the next run rolls that bucket up again.
Retention never deletes raw points or 5-minute buckets that are not rolled up yet.

Queries read the rolled-up buckets up to the mark and fold the rest from the finer data
(raw points for the still-open bucket), so recent points show in every tier.

Time: callers pass epoch seconds (``now``, ``start``, ``end``); tables hold integer ms.
Writers take the `Database` and own their transactions; readers take an `AsyncSession`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from watchkeeper.store import bulk, tables
from watchkeeper.store.db import Database
from watchkeeper.telemetry.rollup import (
    FIVE_MINUTES_MS,
    HOUR_MS,
    Bucket,
    Retention,
    SeriesPoint,
    SeriesResult,
    Tier,
    bucket_start,
    choose_tier,
    closed_until,
    fold_buckets,
    fold_points,
    merge_runs,
)

#: A series by what names it: (check key, perfdata label, unit).
SeriesKey = tuple[str, str, str]
#: A point to write: its series, epoch milliseconds and value.
PointIn = tuple[SeriesKey, int, float]

#: Raw time rolled up per transaction (6 buckets), and 5-minute time per hourly transaction:
#: a catch-up after downtime must not hold SQLite's write lock for long.
FIVE_MINUTE_CHUNK_MS = 6 * FIVE_MINUTES_MS
HOURLY_CHUNK_MS = 6 * HOUR_MS
#: Series per retention DELETE (seeks by primary key, one per series).
RETENTION_CHUNK = 500
#: Points per PostgreSQL ``unnest`` insert.
PG_POINTS_PER_STATEMENT = 50_000

_5M = Tier.FIVE_MINUTE.value
_1H = Tier.HOURLY.value

_SQLITE_INSERT = "INSERT OR REPLACE INTO telemetry_points (series_id, at, value) VALUES (?, ?, ?)"
_PG_INSERT = (
    "INSERT INTO telemetry_points (series_id, at, value) "
    "SELECT * FROM unnest(%s::integer[], %s::bigint[], %s::double precision[]) "
    "ON CONFLICT (series_id, at) DO UPDATE SET value = EXCLUDED.value"
)
_BUCKET_COLUMNS = "series_id, bucket, samples, total, minimum, maximum, latest"
_UPSERT_BUCKET = (
    "ON CONFLICT (series_id, bucket) DO UPDATE SET samples = excluded.samples, "
    "total = excluded.total, minimum = excluded.minimum, maximum = excluded.maximum, "
    "latest = excluded.latest"
)
# Outer loop over the series, inner seek on (series_id, at): CROSS JOIN makes SQLite keep
# that order; PostgreSQL plans it as an inner join. ``WHERE true`` tells SQLite that ON
# CONFLICT is the upsert, not a join constraint.
_ROLL_5M = sa.text(
    f"INSERT INTO telemetry_5m ({_BUCKET_COLUMNS}) "
    "SELECT g.series_id, g.bucket, g.samples, g.total, g.minimum, g.maximum, p.value "
    "FROM (SELECT p.series_id AS series_id, p.at - (p.at % 300000) AS bucket, "
    "count(*) AS samples, sum(p.value) AS total, min(p.value) AS minimum, "
    "max(p.value) AS maximum, max(p.at) AS last_at "
    "FROM telemetry_series s CROSS JOIN telemetry_points p "
    "WHERE p.series_id = s.id AND p.at >= :start AND p.at < :stop "
    "GROUP BY p.series_id, p.at - (p.at % 300000)) AS g "
    "JOIN telemetry_points p ON p.series_id = g.series_id AND p.at = g.last_at "
    f"WHERE true {_UPSERT_BUCKET}"
)
_ROLL_1H = sa.text(
    f"INSERT INTO telemetry_1h ({_BUCKET_COLUMNS}) "
    "SELECT g.series_id, g.bucket, g.samples, g.total, g.minimum, g.maximum, f.latest "
    "FROM (SELECT f.series_id AS series_id, f.bucket - (f.bucket % 3600000) AS bucket, "
    "sum(f.samples) AS samples, sum(f.total) AS total, min(f.minimum) AS minimum, "
    "max(f.maximum) AS maximum, max(f.bucket) AS last_bucket "
    "FROM telemetry_series s CROSS JOIN telemetry_5m f "
    "WHERE f.series_id = s.id AND f.bucket >= :start AND f.bucket < :stop "
    "GROUP BY f.series_id, f.bucket - (f.bucket % 3600000)) AS g "
    "JOIN telemetry_5m f ON f.series_id = g.series_id AND f.bucket = g.last_bucket "
    f"WHERE true {_UPSERT_BUCKET}"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class SeriesInfo:
    """A recorded series of a check."""

    id: int
    check_key: str
    metric: str
    uom: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RollupReport:
    """Buckets written by one `rollup` run, per tier."""

    five_minute: int = 0
    hourly: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class RetentionReport:
    """Rows deleted by one `enforce_retention` run, per tier."""

    raw: int = 0
    five_minute: int = 0
    hourly: int = 0


def to_ms(seconds: float) -> int:
    return round(seconds * 1000)


# --- writing ---------------------------------------------------------------------------------


async def write_points(
    db: Database, points: Sequence[PointIn], ids: dict[SeriesKey, int] | None = None
) -> int:
    """Write ``points`` in one transaction; return how many rows were written.

    ``ids`` is the caller's cache of series ids: series missing from it are registered
    (or looked up) and added once the transaction commits. A point at the same series
    and millisecond as another replaces it (the later one in ``points`` wins). Labels and
    units longer than the columns are skipped.
    """
    cache: dict[SeriesKey, int] = {} if ids is None else ids
    rows: dict[tuple[int, int], float] = {}
    async with db.begin() as session:
        missing = {
            key
            for key, _, _ in points
            if key not in cache
            and len(key[1]) <= tables.METRIC_LENGTH
            and len(key[2]) <= tables.UOM_LENGTH
        }
        found = await _ensure_series(session, missing) if missing else {}
        for key, at, value in points:
            series = cache.get(key)
            if series is None:
                series = found.get(key)
            if series is not None:
                rows[series, at] = value
        if rows:
            conn = await session.connection()
            await _insert_points(conn, rows)
            # A point behind the rollup mark pulls it back to its bucket (see the docstring).
            oldest = bucket_start(min(at for _, at in rows), FIVE_MINUTES_MS)
            await _lower_mark(session, _5M, oldest)
            await _lower_mark(session, _1H, bucket_start(oldest, HOUR_MS))
    cache.update(found)
    return len(rows)


async def _ensure_series(session: AsyncSession, keys: set[SeriesKey]) -> dict[SeriesKey, int]:
    """Register ``keys`` (those that exist stay as they are) and return their ids."""
    t = tables.telemetry_series
    conn = await session.connection()
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    values = [{"check_key": k, "metric": m, "uom": u} for k, m, u in sorted(keys)]
    for chunk in bulk.chunks(values):
        await session.execute(insert(t).values(list(chunk)).on_conflict_do_nothing())
    found: dict[SeriesKey, int] = {}
    check_keys = sorted({key[0] for key in keys})
    for chunk in bulk.chunks(check_keys):
        result = await session.execute(
            sa.select(t.c.id, t.c.check_key, t.c.metric, t.c.uom).where(t.c.check_key.in_(chunk))
        )
        for id_, check_key, metric, uom in result:
            if (check_key, metric, uom) in keys:
                found[check_key, metric, uom] = id_
    return found


async def _insert_points(conn: AsyncConnection, rows: dict[tuple[int, int], float]) -> None:
    if conn.dialect.name == "postgresql":
        items = list(rows.items())
        for start in range(0, len(items), PG_POINTS_PER_STATEMENT):
            part = items[start : start + PG_POINTS_PER_STATEMENT]
            columns = (
                [series for (series, _), _ in part],
                [at for (_, at), _ in part],
                [value for _, value in part],
            )
            await conn.exec_driver_sql(_PG_INSERT, columns)
        return
    await conn.exec_driver_sql(
        _SQLITE_INSERT, [(series, at, value) for (series, at), value in rows.items()]
    )


async def _lower_mark(session: AsyncSession, tier: str, until: int) -> None:
    t = tables.telemetry_rollups
    await session.execute(
        sa.update(t).where(t.c.tier == tier, t.c.done_until > until).values(done_until=until)
    )


# --- rollup and retention ----------------------------------------------------------------------


async def rollup(
    db: Database, now: float, *, retention: Retention | None = None, delay: float = 60.0
) -> RollupReport:
    """Roll up every closed bucket not rolled up yet: raw into 5 minutes, 5 minutes into hours.

    A 5-minute bucket is closed ``delay`` seconds after its end (room for points still
    queued); an hour once all its 5-minute buckets are rolled up. Nothing older than the
    finer tier's retention is rolled up again (its data may be partly deleted).
    """
    retention = retention or Retention()
    now_ms = to_ms(now)
    raw_floor = bucket_start(now_ms - to_ms(retention.raw), FIVE_MINUTES_MS)
    five_end = closed_until(now_ms, FIVE_MINUTES_MS, to_ms(delay))
    five = 0
    while True:
        async with db.begin() as session:
            start = max(await _claim_mark(session, _5M, raw_floor), raw_floor)
            if start >= five_end:
                break
            stop = min(five_end, start + FIVE_MINUTE_CHUNK_MS)
            result = await session.execute(_ROLL_5M, {"start": start, "stop": stop})
            five += max(_rowcount(result), 0)
            await _set_mark(session, _5M, stop)
            await _lower_mark(session, _1H, bucket_start(start, HOUR_MS))
    five_floor = bucket_start(now_ms - to_ms(retention.five_minute), HOUR_MS)
    hourly = 0
    while True:
        async with db.begin() as session:
            start = max(await _claim_mark(session, _1H, five_floor), five_floor)
            hour_end = bucket_start(await _mark(session, _5M) or 0, HOUR_MS)
            if start >= hour_end:
                break
            stop = min(hour_end, start + HOURLY_CHUNK_MS)
            result = await session.execute(_ROLL_1H, {"start": start, "stop": stop})
            hourly += max(_rowcount(result), 0)
            await _set_mark(session, _1H, stop)
    return RollupReport(five_minute=five, hourly=hourly)


async def enforce_retention(
    db: Database, now: float, *, retention: Retention | None = None
) -> RetentionReport:
    """Delete what is older than each tier's retention, never what is not rolled up yet.

    Cuts fall on bucket boundaries, so a bucket is never half deleted. Deletes go a chunk
    of series at a time, each a primary-key seek (no index on time alone is kept).
    """
    retention = retention or Retention()
    now_ms = to_ms(now)
    async with db.session() as session:
        marks = await _marks(session)
        series_ids = list((await session.scalars(sa.select(tables.telemetry_series.c.id))).all())
    raw_cut = bucket_start(now_ms - to_ms(retention.raw), FIVE_MINUTES_MS)
    five_cut = bucket_start(now_ms - to_ms(retention.five_minute), HOUR_MS)
    hourly_cut = bucket_start(now_ms - to_ms(retention.hourly), HOUR_MS)
    if _5M in marks:
        raw_cut = min(raw_cut, marks[_5M])
    if _1H in marks:
        five_cut = min(five_cut, marks[_1H])
    p, f, h = tables.telemetry_points, tables.telemetry_5m, tables.telemetry_1h
    counts = [0, 0, 0]
    for chunk in bulk.chunks(sorted(series_ids), RETENTION_CHUNK):
        async with db.begin() as session:
            for i, stmt in enumerate(
                (
                    sa.delete(p).where(p.c.series_id.in_(chunk), p.c.at < raw_cut),
                    sa.delete(f).where(f.c.series_id.in_(chunk), f.c.bucket < five_cut),
                    sa.delete(h).where(h.c.series_id.in_(chunk), h.c.bucket < hourly_cut),
                )
            ):
                counts[i] += max(_rowcount(await session.execute(stmt)), 0)
    return RetentionReport(raw=counts[0], five_minute=counts[1], hourly=counts[2])


def _rowcount(result: Any) -> int:
    count: int = result.rowcount
    return count


async def _mark(session: AsyncSession, tier: str) -> int | None:
    t = tables.telemetry_rollups
    value: int | None = await session.scalar(sa.select(t.c.done_until).where(t.c.tier == tier))
    return value


async def _marks(session: AsyncSession) -> dict[str, int]:
    t = tables.telemetry_rollups
    rows = await session.execute(sa.select(t.c.tier, t.c.done_until))
    return {tier: until for tier, until in rows}


async def _claim_mark(session: AsyncSession, tier: str, initial: int) -> int:
    """The tier's mark, locked for this transaction (created at ``initial`` if missing).

    The row lock makes a concurrent late write's `_lower_mark` wait and apply after ours.
    """
    t = tables.telemetry_rollups
    conn = await session.connection()
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    await session.execute(insert(t).values(tier=tier, done_until=initial).on_conflict_do_nothing())
    value = await session.scalar(
        sa.select(t.c.done_until).where(t.c.tier == tier).with_for_update()
    )
    assert value is not None  # inserted just above
    return int(value)


async def _set_mark(session: AsyncSession, tier: str, until: int) -> None:
    t = tables.telemetry_rollups
    await session.execute(sa.update(t).where(t.c.tier == tier).values(done_until=until))


# --- reading ---------------------------------------------------------------------------------


async def list_metrics(session: AsyncSession, check_key: str) -> list[SeriesInfo]:
    """The series recorded for a check, by metric label then unit."""
    t = tables.telemetry_series
    rows = await session.execute(
        sa.select(t.c.id, t.c.metric, t.c.uom)
        .where(t.c.check_key == check_key)
        .order_by(t.c.metric, t.c.uom)
    )
    return [SeriesInfo(id=i, check_key=check_key, metric=m, uom=u) for i, m, u in rows]


async def query_series(
    session: AsyncSession,
    check_key: str,
    metric: str,
    start: float,
    end: float,
    *,
    tier: Tier | None = None,
    uom: str | None = None,
    now: float | None = None,
    retention: Retention | None = None,
) -> SeriesResult:
    """A metric of a check over ``[start, end]`` (epoch seconds), from the tier that fits.

    ``tier`` None picks one with `choose_tier` (``now`` defaults to the wall clock). When
    the metric changed unit, the newest series is read unless ``uom`` names one. Rollup
    tiers include the buckets not rolled up yet, folded from the finer data, so the last
    (open) bucket shows what has come in so far.
    """
    retention = retention or Retention()
    now = time.time() if now is None else now
    chosen = tier or choose_tier(start, end, now, retention)
    step = chosen.width_ms / 1000
    series = await _find_series(session, check_key, metric, uom)
    if series is None:
        return SeriesResult(
            check_key=check_key,
            metric=metric,
            uom=None,
            tier=chosen,
            start=start,
            end=end,
            step=step,
            points=(),
        )
    a, b = to_ms(start), to_ms(end)
    if chosen is Tier.RAW:
        points = tuple(
            SeriesPoint(at=at / 1000, count=1, min=v, avg=v, max=v, last=v)
            for at, v in await _raw(session, series.id, a, b)
        )
    else:
        buckets = await _buckets(session, series.id, chosen, a, b)
        points = tuple(SeriesPoint.of_bucket(bucket) for bucket in buckets)
    return SeriesResult(
        check_key=check_key,
        metric=metric,
        uom=series.uom,
        tier=chosen,
        start=start,
        end=end,
        step=step,
        points=points,
    )


async def _find_series(
    session: AsyncSession, check_key: str, metric: str, uom: str | None
) -> SeriesInfo | None:
    t = tables.telemetry_series
    stmt = sa.select(t.c.id, t.c.uom).where(t.c.check_key == check_key, t.c.metric == metric)
    if uom is not None:
        stmt = stmt.where(t.c.uom == uom)
    row = (await session.execute(stmt.order_by(t.c.id.desc()).limit(1))).first()
    if row is None:
        return None
    return SeriesInfo(id=row[0], check_key=check_key, metric=metric, uom=row[1])


async def _raw(
    session: AsyncSession, series_id: int, a: int, b: int
) -> Sequence[tuple[int, float]]:
    p = tables.telemetry_points
    rows = await session.execute(
        sa.select(p.c.at, p.c.value)
        .where(p.c.series_id == series_id, p.c.at >= a, p.c.at <= b)
        .order_by(p.c.at)
    )
    return [(at, value) for at, value in rows]


async def _rolled(
    session: AsyncSession, table: sa.Table, series_id: int, lo: int, hi: int, below: int
) -> list[Bucket]:
    """Stored buckets of a tier starting in ``[lo, hi]`` and before ``below``."""
    c = table.c
    rows = await session.execute(
        sa.select(c.bucket, c.samples, c.total, c.minimum, c.maximum, c.latest)
        .where(c.series_id == series_id, c.bucket >= lo, c.bucket <= hi, c.bucket < below)
        .order_by(c.bucket)
    )
    return [
        Bucket(start=s, count=n, sum=total, min=low, max=high, last=last)
        for s, n, total, low, high, last in rows
    ]


async def _buckets(
    session: AsyncSession, series_id: int, tier: Tier, a: int, b: int
) -> list[Bucket]:
    """Rolled-up buckets up to each tier's mark, the rest folded from finer data."""
    marks = await _marks(session)
    w5 = marks.get(_5M, 0)
    # A late point may have pulled the 5-minute mark back before the hourly one.
    w1 = min(marks.get(_1H, 0), bucket_start(w5, HOUR_MS))
    width = tier.width_ms
    lo = bucket_start(a, width)
    raw = await _raw(session, series_id, max(lo, w5), b)
    recent = fold_points(raw, width)
    if tier is Tier.FIVE_MINUTE:
        return merge_runs(await _rolled(session, tables.telemetry_5m, series_id, lo, b, w5), recent)
    hours = await _rolled(session, tables.telemetry_1h, series_id, lo, b, w1)
    fives = await _rolled(session, tables.telemetry_5m, series_id, max(lo, w1), b, w5)
    return merge_runs(hours, fold_buckets(fives, HOUR_MS), recent)
