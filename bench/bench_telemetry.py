"""Telemetry figures on SQLite and PostgreSQL: ingest rate, bytes per point, 30-day query time.

    python bench/bench_telemetry.py                   # SQLite, and PostgreSQL if configured
    python bench/bench_telemetry.py --database-url postgresql+psycopg://postgres@127.0.0.1/test

For each database it prints:

* ingest: ``--series`` series (a metric of a check each) x ``--steps`` results, written as
  the recorder writes them (batches of ``flush_points`` in time order, warm series ids);
  the first batch, which registers the series, is timed apart;
* maintenance: one rollup + retention run over those series (what the recorder does
  every minute);
* bytes per point per tier: table size (SQLite: dbstat pages; PostgreSQL:
  pg_total_relation_size, indexes included) over its rows;
* a 30-day graph query for one metric (p50 / p95 over ``--repeats``, a fresh session
  each, as an API call), with 30 days of that metric in the tiers as retention leaves them
  (raw for 48 h, 5-minute buckets for 30 d, hours), ``--history-series`` other series
  with the same history, and the ingest series present. 1-day and 6-hour queries too.

Targets: >= 50,000 points/s ingested on SQLite; a 30-day query under 100 ms.
The PostgreSQL URL defaults to WATCHKEEPER_TEST_PG_URL; a scratch database is created
there and dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_import import drop_pg_database, pg_database
from watchkeeper import store
from watchkeeper.store import tables
from watchkeeper.telemetry import repository as ts
from watchkeeper.telemetry.rollup import (
    FIVE_MINUTES_MS,
    HOUR_MS,
    Retention,
    bucket_start,
    fold_buckets,
    fold_points,
)

TARGET_INGEST = 50_000
TARGET_QUERY_MS = 100.0
DAY_MS = 86_400_000
BATCH = 20_000  # the recorder's default flush_points


async def ingest(db: store.Database, series: int, steps: int, now_ms: int) -> dict[str, float]:
    """Write series x steps points, one step a minute ending at ``now_ms``; time it."""
    rng = random.Random(1)
    keys = [(f"host{i // 10}!svc{i % 10}", "time", "s") for i in range(series)]
    ids: dict[ts.SeriesKey, int] = {}
    first_at = now_ms - steps * 60_000
    points = [
        (key, first_at + step * 60_000 + i % 1000, rng.random())
        for step in range(steps)
        for i, key in enumerate(keys)
    ]
    t0 = time.perf_counter()
    await ts.write_points(db, points[:BATCH], ids)
    t1 = time.perf_counter()
    for start in range(BATCH, len(points), BATCH):
        await ts.write_points(db, points[start : start + BATCH], ids)
    t2 = time.perf_counter()
    warm = len(points) - BATCH
    if warm <= 0:
        raise SystemExit(
            f"bench: {len(points)} points fit in the first batch ({BATCH}), which registers the "
            "series and is timed apart: raise --series or --steps to measure ingest"
        )
    return {"points": len(points), "first_batch_s": t1 - t0, "rate": warm / (t2 - t1)}


async def maintenance(db: store.Database, now: float) -> dict[str, float]:
    t0 = time.perf_counter()
    report = await ts.rollup(db, now)
    t1 = time.perf_counter()
    await ts.enforce_retention(db, now)
    t2 = time.perf_counter()
    return {"rollup_s": t1 - t0, "retention_s": t2 - t1, "buckets": report.five_minute}


async def load_history(db: store.Database, key: ts.SeriesKey, now_ms: int, seed: int) -> None:
    """30 days of one point a minute, stored as retention leaves it, marks as rollup sets."""
    rng = random.Random(seed)
    start = bucket_start(now_ms - 30 * DAY_MS, HOUR_MS)
    raw = [(at, rng.gauss(50, 10)) for at in range(start, now_ms, 60_000)]
    r = Retention()
    w5 = bucket_start(now_ms - 60_000, FIVE_MINUTES_MS)
    w1 = bucket_start(w5, HOUR_MS)
    five = [b for b in fold_points([p for p in raw if p[0] < w5], FIVE_MINUTES_MS)]
    hours = fold_buckets([b for b in five if b.start < w1], HOUR_MS)
    raw_floor = bucket_start(now_ms - int(r.raw * 1000), FIVE_MINUTES_MS)
    ids: dict[ts.SeriesKey, int] = {}
    await ts.write_points(db, [(key, at, v) for at, v in raw if at >= raw_floor], ids)
    sid = ids[key]
    async with db.begin() as session:
        for table, rows in ((tables.telemetry_5m, five), (tables.telemetry_1h, hours)):
            await session.execute(
                sa.insert(table),
                [
                    {
                        "series_id": sid,
                        "bucket": b.start,
                        "samples": b.count,
                        "total": b.sum,
                        "minimum": b.min,
                        "maximum": b.max,
                        "latest": b.last,
                    }
                    for b in rows
                ],
            )


async def set_marks(db: store.Database, now_ms: int) -> None:
    w5 = bucket_start(now_ms - 60_000, FIVE_MINUTES_MS)
    t = tables.telemetry_rollups
    async with db.begin() as session:
        await session.execute(sa.delete(t))
        await session.execute(
            sa.insert(t),
            [
                {"tier": "5m", "done_until": w5},
                {"tier": "1h", "done_until": bucket_start(w5, HOUR_MS)},
            ],
        )


async def sizes(db: store.Database) -> dict[str, float]:
    """Bytes per row of each tier's table (indexes included)."""
    out: dict[str, float] = {}
    async with db.session() as session:
        for name in ("telemetry_points", "telemetry_5m", "telemetry_1h"):
            table = tables.Base.metadata.tables[name]
            rows = int(await session.scalar(sa.select(sa.func.count()).select_from(table)) or 0)
            if db.dialect == "sqlite":
                size = await session.scalar(
                    sa.text("SELECT sum(pgsize) FROM dbstat WHERE name = :n"), {"n": name}
                )
            else:
                size = await session.scalar(sa.text(f"SELECT pg_total_relation_size('{name}')"))
            out[name] = (size or 0) / rows if rows else 0.0
    return out


async def query_times(
    db: store.Database, key: ts.SeriesKey, now: float, span: float, repeats: int
) -> tuple[float, float, str, int]:
    times = []
    tier, points = "", 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        async with db.session() as session:
            result = await ts.query_series(session, key[0], key[1], now - span, now, now=now)
        times.append((time.perf_counter() - t0) * 1000)
        tier, points = result.tier.value, len(result.points)
    times.sort()
    p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
    return statistics.median(times), p95, tier, points


async def measure(url: str, args: argparse.Namespace) -> dict[str, Any]:
    db = store.Database.from_url(url)
    await db.migrate()
    try:
        if db.dialect == "postgresql":
            async with db.begin() as session:  # a clean slate in a reused database
                names = "telemetry_points, telemetry_5m, telemetry_1h, telemetry_rollups"
                await session.execute(sa.text(f"TRUNCATE {names}, telemetry_series"))
        now = time.time()
        now_ms = int(now * 1000)
        target: ts.SeriesKey = ("target!http", "time", "s")
        for i in range(args.history_series):
            await load_history(db, (f"history{i}!http", "time", "s"), now_ms, seed=i + 2)
        await load_history(db, target, now_ms, seed=1)
        await set_marks(db, now_ms)
        # The ingested points are older than the marks: the rollup catches up on them.
        out: dict[str, Any] = {"ingest": await ingest(db, args.series, args.steps, now_ms)}
        out["maintenance"] = await maintenance(db, now)
        if db.dialect == "postgresql":
            async with db.engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.exec_driver_sql("VACUUM ANALYZE")
        out["bytes"] = await sizes(db)
        out["queries"] = {
            label: await query_times(db, target, now, span, args.repeats)
            for label, span in (("30 days", 30 * 86400.0), ("1 day", 86400.0), ("6 h", 21600.0))
        }
        return out
    finally:
        await db.aclose()


def report(backend: str, r: dict[str, Any]) -> None:
    i, m, b = r["ingest"], r["maintenance"], r["bytes"]
    target = f"(target >= {TARGET_INGEST:,})" if backend == "sqlite" else ""
    print(f"== {backend}")
    print(f"ingest      {i['rate']:>10,.0f} points/s  {target}")
    print(
        f"            {i['points']:,} points; "
        f"first batch (registers series) {i['first_batch_s']:.2f} s"
    )
    print(
        f"maintenance rollup {m['rollup_s']:.2f} s ({m['buckets']:,} 5-minute buckets), "
        f"retention {m['retention_s']:.2f} s"
    )
    print(
        f"bytes/row   raw point {b['telemetry_points']:.1f}   "
        f"5-min bucket {b['telemetry_5m']:.1f}   1-hour bucket {b['telemetry_1h']:.1f}"
    )
    for label, (p50, p95, tier, points) in r["queries"].items():
        note = f"(target < {TARGET_QUERY_MS:.0f} ms)" if label == "30 days" else ""
        print(
            f"query {label:<8} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  tier {tier:<3} "
            f"{points:>5} points  {note}"
        )
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("WATCHKEEPER_TEST_PG_URL"),
        help="PostgreSQL server to use (env WATCHKEEPER_TEST_PG_URL)",
    )
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=100, help="results per series")
    parser.add_argument("--history-series", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()
    if not args.skip_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            report("sqlite", asyncio.run(measure(f"sqlite:///{Path(tmp) / 'bench.db'}", args)))
    if args.database_url:
        url, name = pg_database(args.database_url)
        try:
            report("postgresql", asyncio.run(measure(url, args)))
        finally:
            drop_pg_database(args.database_url, name)
    else:
        print("(no PostgreSQL: pass --database-url or set WATCHKEEPER_TEST_PG_URL)")


if __name__ == "__main__":
    main()
