"""The notifier's policy: backoff schedule, attempt and age limits, unknown channels, overflow.

Channels here are scripted fakes; time is a fake clock that the fake sleep advances, so
retries run at once and their delays are asserted exactly.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Sequence
from typing import Any, ClassVar, Literal

import pytest
from pydantic import BaseModel

from tests.waiting import wait_until
from watchkeeper.document.normalize import ObjectRecord
from watchkeeper.errors import StoreError
from watchkeeper.notify.channels import (
    ChannelContext,
    CommandSender,
    DeliveryOutcome,
    EmailChannel,
    EmailSender,
    PermanentFailure,
    TemporaryFailure,
    WebhookSender,
)
from watchkeeper.notify.notification import Notification, NotificationKind
from watchkeeper.notify.notifier import Notifier, NotifierSettings, retry_delay
from watchkeeper.notify.repository import DeliveryAttempt
from watchkeeper.plugins import CHANNELS

T0 = 1_764_000_000.0


class _Top(random.Random):
    """Jitter always at its top: each delay is the whole ceiling."""

    def uniform(self, a: float, b: float) -> float:
        return b


class _Bottom(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return a


class ScriptedSpec(BaseModel):
    name: str
    kind: Literal["scripted"]
    #: One step per attempt: ok, retry, fail, temporary, permanent, crash, oserror, block.
    script: list[str]


#: Attempts each scripted channel saw, by channel name.
SEEN: dict[str, list[Notification]] = {}
GATE: dict[str, asyncio.Event] = {}
RUNNING = {"now": 0, "max": 0}


@CHANNELS.register
class ScriptedChannel:
    kind: ClassVar[str] = "scripted"
    Config: ClassVar[type[BaseModel]] = ScriptedSpec

    def __init__(self, spec: ScriptedSpec, context: ChannelContext) -> None:
        self.name = spec.name
        self.script = spec.script

    async def deliver(self, notification: Notification) -> DeliveryOutcome:
        seen = SEEN.setdefault(self.name, [])
        seen.append(notification)
        step = self.script[min(len(seen), len(self.script)) - 1]
        if step == "ok":
            return DeliveryOutcome.delivered("fake 200")
        if step == "retry":
            return DeliveryOutcome.retry("busy", status="fake 503")
        if step == "retry-after":
            return DeliveryOutcome.retry("slow down", status="fake 429", retry_after=200.0)
        if step == "fail":
            return DeliveryOutcome.failed("refused", status="fake 400")
        if step == "temporary":
            raise TemporaryFailure("try later")
        if step == "permanent":
            raise PermanentFailure("never")
        if step == "oserror":
            raise ConnectionResetError("reset by peer")
        if step == "block":
            RUNNING["now"] += 1
            RUNNING["max"] = max(RUNNING["max"], RUNNING["now"])
            try:
                await GATE[self.name].wait()
            finally:
                RUNNING["now"] -= 1
            return DeliveryOutcome.delivered()
        raise RuntimeError("a bug in the channel")


class FakeTime:
    def __init__(self) -> None:
        self.now = T0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Log:
    def __init__(self) -> None:
        self.batches: list[list[DeliveryAttempt]] = []

    async def record(self, attempts: Sequence[DeliveryAttempt]) -> None:
        self.batches.append(list(attempts))

    @property
    def attempts(self) -> list[DeliveryAttempt]:
        return [a for batch in self.batches for a in batch]


@pytest.fixture(autouse=True)
def _reset() -> None:
    SEEN.clear()
    GATE.clear()
    RUNNING.update(now=0, max=0)


@pytest.fixture
def time_() -> FakeTime:
    return FakeTime()


@pytest.fixture
def log() -> Log:
    return Log()


@pytest.fixture
async def make(time_: FakeTime, log: Log) -> AsyncIterator[Any]:
    made: list[Notifier] = []

    def build(**settings: Any) -> Notifier:
        notifier = Notifier(
            None,
            settings=NotifierSettings(**settings),
            record=log.record,
            clock=time_.clock,
            sleep=time_.sleep,
            rng=_Top(),
        )
        made.append(notifier)
        return notifier

    yield build
    for notifier in made:
        await notifier.aclose()


def _note(*channels: str, key: str = "web1!http") -> Notification:
    return Notification(
        kind=NotificationKind.PROBLEM,
        key=key,
        host="web1",
        service="http",
        state="CRITICAL",
        output="HTTP CRITICAL - 503",
        at=T0,
        channels=channels,
        alarm_id=7,
    )


def _scripted(name: str, *steps: str) -> dict[str, Any]:
    return {"name": name, "kind": "scripted", "script": list(steps)}


# --- the schedule -----------------------------------------------------------------------


def test_the_backoff_doubles_from_the_base_and_stops_at_max_attempts() -> None:
    settings = NotifierSettings(max_attempts=5, backoff_base=30, backoff_cap=300, max_age=10_000)
    top = [retry_delay(settings, attempt=n, elapsed=0, rng=_Top()) for n in range(1, 6)]
    bottom = [retry_delay(settings, attempt=n, elapsed=0, rng=_Bottom()) for n in range(1, 5)]
    assert top == [30, 60, 120, 240, None]
    assert bottom == [15, 30, 60, 120]  # equal jitter: never under half the ceiling


def test_the_backoff_is_capped_and_jittered_within_bounds() -> None:
    settings = NotifierSettings(max_attempts=20, backoff_base=30, backoff_cap=300, max_age=1e9)
    rng = random.Random(4)
    for attempt in range(1, 20):
        delay = retry_delay(settings, attempt=attempt, elapsed=0, rng=rng)
        ceiling = min(300, 30 * 2 ** (attempt - 1))
        assert delay is not None and ceiling / 2 <= delay <= ceiling


def test_no_retry_starts_past_the_maximum_age() -> None:
    settings = NotifierSettings(backoff_base=30, max_age=600)
    assert retry_delay(settings, attempt=1, elapsed=570, rng=_Top()) == 30
    assert retry_delay(settings, attempt=1, elapsed=571, rng=_Top()) is None


def test_retry_after_lengthens_the_wait_up_to_the_cap() -> None:
    settings = NotifierSettings(backoff_base=30, backoff_cap=300, max_age=10_000)
    assert retry_delay(settings, attempt=1, elapsed=0, rng=_Top(), retry_after=120) == 120
    assert retry_delay(settings, attempt=1, elapsed=0, rng=_Top(), retry_after=5) == 30
    assert retry_delay(settings, attempt=1, elapsed=0, rng=_Top(), retry_after=9999) == 300


def test_settings_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        NotifierSettings(max_attempts=0)


# --- delivering -------------------------------------------------------------------------


async def test_retryable_failures_are_retried_with_backoff_until_delivered(
    make: Any, time_: FakeTime
) -> None:
    notifier = make()
    notifier.configure([_scripted("ops", "retry", "temporary", "ok")])
    attempts = await notifier.deliver(_note("ops"))
    assert [(a.attempt, a.success, a.status) for a in attempts] == [
        (1, False, "fake 503"),
        (2, False, None),
        (3, True, "fake 200"),
    ]
    assert attempts[1].error == "try later"
    assert time_.sleeps == [30, 60]
    assert [a.at.timestamp() for a in attempts] == [T0, T0 + 30, T0 + 90]
    first = attempts[0]
    assert (first.notification_kind, first.key, first.state, first.alarm_id, first.channel) == (
        "problem",
        "web1!http",
        "CRITICAL",
        7,
        "ops",
    )


async def test_it_gives_up_after_max_attempts(make: Any, time_: FakeTime, log: Log) -> None:
    notifier = make(max_attempts=4, max_age=10_000)
    notifier.configure([_scripted("ops", "retry")])
    attempts = await notifier.deliver(_note("ops"))
    assert [a.attempt for a in attempts] == [1, 2, 3, 4]
    assert not any(a.success for a in attempts)
    assert time_.sleeps == [30, 60, 120]
    await notifier.join()
    assert log.attempts == attempts  # every attempt is recorded


async def test_it_gives_up_when_the_notification_is_too_old(make: Any, time_: FakeTime) -> None:
    notifier = make(max_attempts=10, max_age=100)
    notifier.configure([_scripted("ops", "retry")])
    attempts = await notifier.deliver(_note("ops"))
    assert len(attempts) == 3  # waits 30 and 60; a third wait (120) would pass 100 s
    assert time_.sleeps == [30, 60]


async def test_permanent_failures_and_channel_bugs_are_not_retried(
    make: Any, time_: FakeTime
) -> None:
    notifier = make()
    notifier.configure(
        [
            _scripted("refuses", "fail"),
            _scripted("raises", "permanent"),
            _scripted("buggy", "crash"),
            _scripted("flaky-os", "oserror", "ok"),
        ]
    )
    attempts = await notifier.deliver(_note("refuses", "raises", "buggy", "flaky-os"))
    by_channel = {(a.channel, a.attempt): (a.success, a.error) for a in attempts}
    assert by_channel == {
        ("refuses", 1): (False, "refused"),
        ("raises", 1): (False, "never"),
        ("buggy", 1): (False, "channel crashed: RuntimeError('a bug in the channel')"),
        ("flaky-os", 1): (False, "ConnectionResetError: reset by peer"),
        ("flaky-os", 2): (True, None),
    }
    assert time_.sleeps == [30]


async def test_retry_after_is_honoured(make: Any, time_: FakeTime) -> None:
    notifier = make()
    notifier.configure([_scripted("ops", "retry-after", "ok")])
    await notifier.deliver(_note("ops"))
    assert time_.sleeps == [200]


async def test_unknown_and_unusable_channels_are_recorded_as_failed(make: Any) -> None:
    notifier = make()
    notifier.configure(
        [
            _scripted("ops", "ok"),
            {"name": "pager", "kind": "pigeon"},
            {"name": "bad", "kind": "scripted", "script": "not a list"},
        ]
    )
    attempts = await notifier.deliver(_note("ops", "nope", "pager", "bad", "ops"))
    result = {a.channel: (a.attempt, a.success, a.error) for a in attempts}
    assert len(attempts) == 4  # "ops" named twice is delivered once
    assert result["ops"] == (1, True, None)
    assert result["nope"] == (
        1,
        False,
        "no notification channel named 'nope' in the document (channels: ops)",
    )
    assert result["pager"][2] is not None and "kind 'pigeon'" in result["pager"][2]
    assert result["bad"][2] is not None
    assert "channel 'bad' cannot be used: script: Input should be a valid list" in result["bad"][2]


async def test_reconfiguring_replaces_channels(make: Any) -> None:
    notifier = make()
    notifier.configure([_scripted("ops", "ok")])
    notifier.configure([_scripted("oncall", "ok")])
    assert set(notifier.channels) == {"oncall"}
    [attempt] = await notifier.deliver(_note("ops"))
    assert not attempt.success and "no notification channel named 'ops'" in (attempt.error or "")


# --- the queue --------------------------------------------------------------------------


async def test_run_delivers_what_notify_queued_and_records_it(make: Any, log: Log) -> None:
    notifier = make()
    notifier.configure([_scripted("ops", "retry", "ok"), _scripted("mail", "ok")])
    runner = asyncio.create_task(notifier.run())
    try:
        notifier.notify(_note("ops", "mail", key="a"))
        notifier.notify(_note("mail", key="b"))
        await notifier.join()
    finally:
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner
    got = sorted((a.key, a.channel, a.attempt, a.success) for a in log.attempts)
    assert got == [
        ("a", "mail", 1, True),
        ("a", "ops", 1, False),
        ("a", "ops", 2, True),
        ("b", "mail", 1, True),
    ]


async def test_a_full_queue_drops_with_one_warning(
    make: Any, log: Log, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = make(queue_size=2)
    notifier.configure([_scripted("ops", "ok")])
    with caplog.at_level(logging.WARNING, logger="watchkeeper.notify.notifier"):
        for key in "abcd":
            notifier.notify(_note("ops", key=key))  # returns at once even when full
    assert notifier.dropped == 2
    warnings = [r for r in caplog.records if r.getMessage().startswith("notification queue full")]
    assert len(warnings) == 1
    runner = asyncio.create_task(notifier.run())
    try:
        await notifier.join()
    finally:
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner
    assert sorted(a.key for a in log.attempts) == ["a", "b"]


async def test_sends_at_once_are_bounded_by_concurrency(make: Any) -> None:
    notifier = make(concurrency=2)
    notifier.configure([_scripted("slow", "block")])
    GATE["slow"] = asyncio.Event()
    runner = asyncio.create_task(notifier.run())
    try:
        for key in "abcde":
            notifier.notify(_note("slow", key=key))
        await wait_until(lambda: RUNNING["now"] >= 2, what="two sends to start")
        # Five were queued before the first started: unbounded, all would be running now.
        assert RUNNING["now"] == 2
        GATE["slow"].set()
        await notifier.join()
    finally:
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner
    assert RUNNING["max"] == 2
    assert len(SEEN["slow"]) == 5


async def test_attempts_the_store_refused_are_kept_for_the_next_flush(
    time_: FakeTime,
) -> None:
    batches: list[list[DeliveryAttempt]] = []
    failures = [True]

    async def flaky(attempts: Sequence[DeliveryAttempt]) -> None:
        if failures and failures.pop(0):
            raise StoreError("database is locked")
        batches.append(list(attempts))

    notifier = Notifier(None, record=flaky, clock=time_.clock, sleep=time_.sleep)
    try:
        notifier.configure([_scripted("ops", "ok")])
        await notifier.deliver(_note("ops", key="a"))
        await notifier.join()  # the store refuses: kept
        assert batches == []
        await notifier.deliver(_note("ops", key="b"))
        await notifier.join()
        assert [[a.key for a in batch] for batch in batches] == [["a", "b"]]
    finally:
        await notifier.aclose()


def test_a_notifier_needs_somewhere_to_record() -> None:
    with pytest.raises(ValueError, match="database or a record function"):
        Notifier(None)


async def test_configure_takes_store_records_models_and_raw_specs(make: Any) -> None:
    notifier = make()
    record = ObjectRecord(
        kind="notifications",
        name="ops",
        hash="0" * 64,
        spec={"name": "ops", "kind": "webhook", "url": "https://hooks.example/ops"},
    )
    mail = EmailChannel.model_validate(
        {"name": "mail", "kind": "email", "to": ["a@example.org"], "from": "wk@example.org"}
    )
    notifier.configure([record, mail, {"name": "page", "kind": "command", "command": ["true"]}])
    built = notifier.channels
    assert {name: type(channel) for name, channel in built.items()} == {
        "ops": WebhookSender,
        "mail": EmailSender,
        "page": CommandSender,
    }
    assert isinstance(built["mail"], EmailSender) and built["mail"].spec.sender == "wk@example.org"
