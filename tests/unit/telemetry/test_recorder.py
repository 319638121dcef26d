"""The telemetry recorder: observe, flush, maintain, and a store that is down."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from watchkeeper import store
from watchkeeper.document.normalize import CheckRecord
from watchkeeper.engine.observed import CheckResult, Observed
from watchkeeper.results import CheckOutcome, CheckState, Metric
from watchkeeper.store import tables
from watchkeeper.telemetry import repository as ts
from watchkeeper.telemetry.recorder import TelemetryRecorder, TelemetrySettings
from watchkeeper.telemetry.rollup import Tier

NOW = 1_764_000_000.0 - 1_764_000_000.0 % 3600


def record(host: str = "web1", service: str | None = "http") -> CheckRecord:
    key = host if service is None else f"{host}!{service}"
    return CheckRecord(key=key, host=host, service=service, zone="core", hash="h", spec={})


def result(at: float, *metrics: Metric, rec: CheckRecord | None = None) -> CheckResult:
    rec = rec or record()
    outcome = CheckOutcome(state=CheckState.OK, output="ok", metrics=metrics)
    return CheckResult(key=rec.key, record=rec, outcome=outcome, raw=outcome, at=at)


def turn(*results: CheckResult, **kw: object) -> Observed:
    return Observed(results=results, **kw)  # type: ignore[arg-type]


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[store.Database]:
    database = store.Database.from_url(f"sqlite:///{tmp_path / 'wk.db'}")
    await database.migrate()
    yield database
    await database.aclose()


async def points(db: store.Database) -> int:
    async with db.session() as session:
        found = await session.scalar(
            sa.select(sa.func.count()).select_from(tables.telemetry_points)
        )
    return int(found or 0)


async def test_observe_queues_metrics_and_flush_writes_them(db: store.Database) -> None:
    recorder = TelemetryRecorder(db)
    time_ = Metric(label="time", value=0.25, uom="s")
    size = Metric(label="size", value=512, uom="B")
    recorder.observe(turn(result(NOW - 20, time_, size)), NOW)
    recorder.observe(turn(result(NOW - 10, time_, Metric(label="bad", value=math.nan))), NOW)
    recorder.observe(Observed(), NOW)  # an empty turn changes nothing
    assert recorder.queued == 3
    assert await recorder.flush() == 3 and recorder.queued == 0
    async with db.session() as session:
        got = await ts.query_series(session, "web1!http", "time", NOW - 60, NOW, now=NOW)
        metrics = await ts.list_metrics(session, "web1!http")
    assert got.tier is Tier.RAW and [(p.at, p.last) for p in got.points] == [
        (NOW - 20, 0.25),
        (NOW - 10, 0.25),
    ]
    assert [m.metric for m in metrics] == ["size", "time"]

    latest = recorder.latest()
    assert [(m.check_key, m.metric, m.value, m.uom, m.at) for m in latest] == [
        ("web1!http", "size", 512, "B", NOW - 20),
        ("web1!http", "time", 0.25, "s", NOW - 10),
    ]
    assert (latest[0].host, latest[0].service, latest[0].zone) == ("web1", "http", "core")


async def test_latest_forgets_removed_checks(db: store.Database) -> None:
    recorder = TelemetryRecorder(db)
    ping = record("web1", None)
    recorder.observe(turn(result(NOW, Metric(label="rta", value=1.0), rec=ping)), NOW)
    recorder.observe(turn(result(NOW, Metric(label="time", value=1.0))), NOW)
    recorder.observe(Observed(removed=("web1!http",)), NOW)
    assert [m.check_key for m in recorder.latest()] == ["web1"]
    recorder.observe(Observed(checks={}), NOW)  # an import that left no checks
    assert recorder.latest() == []


async def test_flush_writes_a_batch_per_call_and_everything_when_asked(
    db: store.Database,
) -> None:
    recorder = TelemetryRecorder(db, TelemetrySettings(flush_points=2))
    for i in range(5):
        recorder.observe(turn(result(NOW + i, Metric(label="x", value=i))), NOW + i)
    assert await recorder.flush() == 2 and recorder.queued == 3
    assert await recorder.flush(everything=True) == 3 and await points(db) == 5


async def test_maintain_rolls_up_and_applies_retention(db: store.Database) -> None:
    settings = TelemetrySettings(raw_retention=3600, five_minute_retention=7200)
    recorder = TelemetryRecorder(db, settings)
    for minute in range(120):
        at = NOW - 7200 + 60 * minute
        recorder.observe(turn(result(at, Metric(label="x", value=minute))), at)
    await recorder.maintain(NOW)
    assert recorder.queued == 0
    async with db.session() as session:
        day = await ts.query_series(
            session, "web1!http", "x", NOW - 7200, NOW, now=NOW, retention=settings.retention
        )
        five = await session.scalar(sa.select(sa.func.count()).select_from(tables.telemetry_5m))
    # The first rollup starts at the raw window (what is older is deleted, not rolled up)
    # and stops at the last closed bucket: 11 of the last hour's 12.
    assert await points(db) == 60
    assert five == 11
    assert day.tier is Tier.FIVE_MINUTE and day.points[-1].last == 119


async def test_a_store_that_is_down_keeps_points_then_drops_the_oldest_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    down = store.Database.from_url(f"sqlite:///{tmp_path / 'missing' / 'wk.db'}")
    recorder = TelemetryRecorder(down, TelemetrySettings(max_queued_points=5))
    for i in range(3):
        recorder.observe(turn(result(NOW + i, Metric(label="x", value=i))), NOW + i)
    with caplog.at_level(logging.WARNING):
        assert await recorder.flush() == 0
        assert await recorder.flush() == 0
        await recorder.maintain(NOW)
    assert recorder.queued == 3
    assert [r.message.startswith("cannot write telemetry") for r in caplog.records] == [True]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        for i in range(3, 10):
            recorder.observe(turn(result(NOW + i, Metric(label="x", value=i))), NOW + i)
    assert recorder.queued == 5
    assert len(caplog.records) == 1 and "dropping the oldest" in caplog.records[0].message
    await down.aclose()

    # The store is back (same queue, a working database): the newest five are written.
    (tmp_path / "missing").mkdir()
    up = store.Database.from_url(f"sqlite:///{tmp_path / 'missing' / 'wk.db'}")
    await up.migrate()
    recorder.db = up
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert await recorder.flush(everything=True) == 5
    messages = [r.message for r in caplog.records]
    assert "writing telemetry recovered" in messages
    assert any("5 telemetry point(s) were dropped" in m for m in messages)
    async with up.session() as session:
        got = await ts.query_series(session, "web1!http", "x", NOW, NOW + 10, now=NOW + 10)
    assert [p.last for p in got.points] == [5, 6, 7, 8, 9]
    await up.aclose()


async def test_run_writes_what_is_left_when_cancelled(db: store.Database) -> None:
    clock_calls: list[float] = []

    def clock() -> float:
        clock_calls.append(NOW)
        return NOW

    recorder = TelemetryRecorder(db, TelemetrySettings(flush_interval=3600), clock=clock)
    task = asyncio.create_task(recorder.run())
    # One yield runs the new task up to its first await (asyncio runs ready tasks in
    # order): deterministic, not a timing guess. Cancelled before that, run() never starts.
    await asyncio.sleep(0)
    recorder.observe(turn(result(NOW, Metric(label="x", value=1.0))), NOW)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await points(db) == 1 and recorder.queued == 0
    assert clock_calls == []  # it never woke up to maintain


async def test_run_writes_early_when_enough_points_wait(db: store.Database) -> None:
    maintained = asyncio.Event()

    def clock() -> float:
        maintained.set()  # read right after the first flush, to maintain
        return NOW

    settings = TelemetrySettings(flush_interval=3600, flush_points=2)
    recorder = TelemetryRecorder(db, settings, clock=clock)
    task = asyncio.create_task(recorder.run())
    for i in range(2):
        recorder.observe(turn(result(NOW + i, Metric(label="x", value=i))), NOW)
    await asyncio.wait_for(maintained.wait(), timeout=10)
    assert await points(db) == 2
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="retentions"):
        TelemetrySettings(raw_retention=86400, five_minute_retention=3600)
    with pytest.raises(ValueError, match="positive"):
        TelemetrySettings(flush_points=0)
    assert TelemetrySettings().retention.hourly == 400 * 86400
