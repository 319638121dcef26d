"""Poller: backoff on failure, recovery, rejected candidates, logging on transitions only."""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from watchkeeper.backoff import backoff_delay
from watchkeeper.errors import DocumentUnreadable, SourceTimeout, SourceUnavailable, UsageError
from watchkeeper.sources.base import Candidate
from watchkeeper.sources.poller import Poller, SourceStatus
from watchkeeper.sources.testing import ScriptedSource, Step

START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
INTERVAL = 30.0
SEED = 7


class FakeTime:
    """A clock that only moves when the poller sleeps; records every delay."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.now = START
        self.sleeps: list[float] = []
        self.stop_after = stop_after

    def clock(self) -> datetime:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        self.now += timedelta(seconds=delay)
        if self.stop_after is not None and len(self.sleeps) >= self.stop_after:
            raise asyncio.CancelledError  # what a cancelled real sleep does
        await asyncio.sleep(0)


class Intake:
    """Records candidates; rejects bodies that are not JSON, like the real intake."""

    def __init__(self) -> None:
        self.taken: list[bytes] = []

    async def __call__(self, candidate: Candidate) -> None:
        try:
            orjson.loads(candidate.body)
        except orjson.JSONDecodeError as exc:
            raise DocumentUnreadable("not valid JSON") from exc
        self.taken.append(candidate.body)


def make_poller(
    source: ScriptedSource, intake: Intake, time: FakeTime, **kwargs: Any
) -> tuple[Poller, list[SourceStatus]]:
    statuses: list[SourceStatus] = []

    async def on_status(status: SourceStatus) -> None:
        statuses.append(status)

    poller = Poller(
        source,
        intake,
        interval=INTERVAL,
        backoff_base=1.0,
        backoff_cap=300.0,
        clock=time.clock,
        sleep=time.sleep,
        rng=random.Random(SEED),
        on_status=on_status,
        **kwargs,
    )
    return poller, statuses


def expected_delays(failures: int) -> list[float]:
    rng = random.Random(SEED)
    return [backoff_delay(n, base=1.0, cap=300.0, rng=rng) for n in range(1, failures + 1)]


async def test_failures_back_off_and_leave_the_configuration_alone() -> None:
    down = SourceUnavailable("GET http://cfg/doc: 503 Service Unavailable")
    source = ScriptedSource("http://cfg/doc", [b"{}", down, down, down, down, b'{"v": 2}'])
    intake, time = Intake(), FakeTime(stop_after=6)
    poller, statuses = make_poller(source, intake, time)

    with pytest.raises(asyncio.CancelledError):
        await poller.run()

    expected = [INTERVAL, *expected_delays(4), INTERVAL]
    assert time.sleeps == pytest.approx(expected, abs=1e-6)  # datetimes hold microseconds
    assert all(a < b for a, b in zip(time.sleeps[1:4], time.sleeps[2:5], strict=True))
    assert [s.consecutive_failures for s in statuses] == [0, 1, 2, 3, 4, 0]
    assert [s.ok for s in statuses] == [True, False, False, False, False, True]
    assert intake.taken == [b"{}", b'{"v": 2}']  # nothing reached the intake while failing

    failing = statuses[3]
    assert failing.last_error == "GET http://cfg/doc: 503 Service Unavailable"
    assert failing.last_success == START
    assert failing.next_attempt == failing.last_attempt + timedelta(seconds=time.sleeps[3])  # type: ignore[operator]


async def test_recovery_resets_the_streak_and_the_backoff() -> None:
    down = SourceTimeout("GET http://cfg/doc: timed out")
    source = ScriptedSource("http://cfg/doc", [down, down, None, down])
    time = FakeTime()
    poller, _ = make_poller(source, Intake(), time)

    for _ in range(3):
        status = await poller.poll_once()
    assert status.ok and status.consecutive_failures == 0 and status.last_error is None
    assert status.next_attempt == status.last_attempt + timedelta(seconds=INTERVAL)  # type: ignore[operator]

    again = await poller.poll_once()
    assert again.consecutive_failures == 1
    first_delay = (again.next_attempt - again.last_attempt).total_seconds()  # type: ignore[operator]
    assert 0.5 <= first_delay <= 1.0  # back to the first step, not the third


async def test_a_rejected_candidate_is_not_a_source_failure() -> None:
    intake, time = Intake(), FakeTime()
    source = ScriptedSource("doc.json", [b"{nope", None, b'{"ok": true}'], clock=time.clock)
    poller, _ = make_poller(source, intake, time)

    rejected = await poller.poll_once()
    assert rejected.ok and rejected.consecutive_failures == 0 and rejected.last_error is None
    assert rejected.last_rejection == "not valid JSON"
    assert rejected.last_candidate == START
    assert rejected.next_attempt == START + timedelta(seconds=INTERVAL)

    time.now += timedelta(seconds=INTERVAL)
    unchanged = await poller.poll_once()  # the poller keeps going; the rejection stays visible
    assert unchanged.ok and unchanged.last_rejection is not None

    time.now += timedelta(seconds=INTERVAL)
    accepted = await poller.poll_once()
    assert accepted.last_rejection is None
    assert accepted.last_candidate == START + timedelta(seconds=2 * INTERVAL)
    assert intake.taken == [b'{"ok": true}']
    assert poller.status is accepted


async def test_logs_only_when_the_source_starts_and_stops_failing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="watchkeeper.sources.poller")
    down = SourceUnavailable("cannot read doc.json: No such file or directory")
    steps: list[Step] = [b"{}", down, down, down, None, None, down, b"{bad"]
    poller, _ = make_poller(ScriptedSource("doc.json", steps), Intake(), FakeTime())

    for _ in steps:
        await poller.poll_once()

    loud = [
        (r.levelno, r.getMessage(), r.__dict__["action"])
        for r in caplog.records
        if r.levelno >= logging.INFO
    ]
    assert loud == [
        (
            logging.WARNING,
            "source doc.json failing, keeping the running configuration: "
            "cannot read doc.json: No such file or directory",
            "source_failing",
        ),
        (logging.INFO, "source doc.json recovered", "source_recovered"),
        (
            logging.WARNING,
            "source doc.json failing, keeping the running configuration: "
            "cannot read doc.json: No such file or directory",
            "source_failing",
        ),
        (logging.INFO, "source doc.json recovered", "source_recovered"),
    ]
    quiet = {r.__dict__["action"] for r in caplog.records if r.levelno < logging.INFO}
    assert quiet == {"source_still_failing", "candidate_rejected"}


async def test_other_errors_from_the_intake_propagate() -> None:
    async def broken(candidate: Candidate) -> None:
        raise RuntimeError("store is gone")

    poller = Poller(
        ScriptedSource("doc.json", [b"{}"]), broken, interval=1.0, clock=FakeTime().clock
    )
    with pytest.raises(RuntimeError, match="store is gone"):
        await poller.poll_once()


async def test_run_is_cancelled_cleanly_while_sleeping() -> None:
    polled = asyncio.Event()
    asleep = asyncio.Event()

    async def on_status(status: SourceStatus) -> None:
        polled.set()

    async def sleep(delay: float) -> None:
        asleep.set()
        await asyncio.Event().wait()

    source = ScriptedSource("doc.json", [b"{}"])
    intake = Intake()
    poller = Poller(
        source, intake, interval=5.0, clock=FakeTime().clock, sleep=sleep, on_status=on_status
    )
    task = asyncio.create_task(poller.run())
    await asleep.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert polled.is_set() and intake.taken == [b"{}"]
    assert source.fetches == 1 and not source.closed  # the poller does not own the source


def test_initial_status_is_ok_and_never_polled() -> None:
    poller = Poller(ScriptedSource("doc.json"), Intake(), interval=1.0, clock=FakeTime().clock)
    assert poller.status == SourceStatus(name="doc.json")
    assert poller.status.ok and poller.status.last_attempt is None


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"interval": 0.0}, "--poll-interval"),
        ({"interval": 1.0, "backoff_base": 0.0}, "backoff"),
        ({"interval": 1.0, "backoff_base": 10.0, "backoff_cap": 5.0}, "backoff"),
    ],
)
def test_bad_timing_is_a_usage_error(kwargs: dict[str, Any], pattern: str) -> None:
    with pytest.raises(UsageError, match=pattern):
        Poller(ScriptedSource("doc.json"), Intake(), clock=FakeTime().clock, **kwargs)
