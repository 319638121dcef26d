"""The alarm stage: the engine's turns in, alarms saved, operators served, restarts survived."""

from __future__ import annotations

import asyncio

import pytest

from tests.unit.alarms.helpers import (
    CRIT,
    OK,
    SOFT,
    T0,
    Inbox,
    change,
    checks,
    rec,
    status,
)
from tests.waiting import wait_until
from watchkeeper import store
from watchkeeper.alarms import repository as alarm_store
from watchkeeper.alarms.service import AlarmService
from watchkeeper.alarms.values import AlarmNotFound, AlarmRequestError, NothingToAcknowledge
from watchkeeper.engine.observed import Observed
from watchkeeper.notify.notification import NotificationKind as N
from watchkeeper.results import CheckOutcome, CheckState, Metric

KEY = "web1!http"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


CONFIG = checks(
    rec("web1", thresholds={"time": {"critical": "2", "no_data": 300}}),
    rec("web1", "ssh"),
)


async def started(db: store.Database, clock: Clock, inbox: Inbox) -> AlarmService:
    service = AlarmService(db, inbox, clock=clock)
    await service.start()
    service.observe(Observed(checks=CONFIG, loading=True), clock.now)
    return service


def went_critical(at: float) -> Observed:
    return Observed(changes=(change(KEY, CRIT, at),), statuses=(status(KEY, CRIT, at),))


async def test_alarms_are_saved_and_survive_a_restart(db: store.Database) -> None:
    clock, inbox = Clock(), Inbox()
    service = await started(db, clock, inbox)
    service.observe(went_critical(T0), T0)
    assert inbox.kinds() == [N.PROBLEM]
    await service.flush()
    async with db.session() as session:
        (saved,) = await alarm_store.list_alarms(session)
    assert saved.key == KEY and saved.notified

    # A new process: the runner's loading turn brings the same saved status.
    clock.now = T0 + 100
    again = AlarmService(db, inbox, clock=clock)
    again.observe(
        Observed(checks=CONFIG, statuses=(status(KEY, CRIT, T0),), loading=True), clock.now
    )  # before start: replayed by start, after the alarms are loaded
    await again.start()
    (alarm,) = again.book.alarms()
    assert alarm.id == saved.id and inbox.kinds() == [N.PROBLEM]
    again.observe(
        Observed(
            changes=(change(KEY, OK, T0 + 200, frm=CRIT),), statuses=(status(KEY, OK, T0 + 200),)
        ),
        T0 + 200,
    )
    assert inbox.kinds() == [N.PROBLEM, N.RECOVERY]
    await again.flush()
    async with db.session() as session:
        assert await alarm_store.list_alarms(session) == []
        events = await alarm_store.list_alarm_events(session, saved.id)
    assert [e.kind.value for e in events] == ["opened", "notified", "resolved", "notified"]


async def test_acknowledge_is_validated_and_saved_at_once(db: store.Database) -> None:
    clock, inbox = Clock(), Inbox()
    service = await started(db, clock, inbox)
    with pytest.raises(NothingToAcknowledge):
        await service.acknowledge(KEY, "ann", "on it")
    service.observe(went_critical(T0), T0)
    with pytest.raises(AlarmRequestError, match=r"^author: must be a non-empty string") as err:
        await service.acknowledge(KEY, " ", "on it")
    assert err.value.argument == "author"
    with pytest.raises(AlarmRequestError, match=r"^expires:"):
        await service.acknowledge(KEY, "ann", "on it", expires=T0 - 1)
    await service.acknowledge(KEY, "ann", "on it", sticky=False, expires=T0 + 600)
    async with db.session() as session:
        (saved,) = await alarm_store.list_alarms(session)
    assert saved.acknowledgement is not None
    assert (saved.acknowledgement.author, saved.acknowledgement.sticky) == ("ann", False)
    assert saved.acknowledgement.expires == pytest.approx(T0 + 600)
    assert service.silenced(KEY) == "acknowledged by ann"
    await service.unacknowledge(KEY)
    assert service.silenced(KEY) is None


async def test_downtimes_are_validated_saved_and_cancelled(db: store.Database) -> None:
    clock, inbox = Clock(), Inbox()
    service = await started(db, clock, inbox)
    with pytest.raises(AlarmRequestError, match=r"^end: must be after start"):
        await service.schedule_downtime("web1", None, T0 + 10, T0, "ann", "")
    with pytest.raises(AlarmRequestError, match=r"^host: no host 'db9'"):
        await service.schedule_downtime("db9", None, T0, T0 + 10, "ann", "")
    with pytest.raises(AlarmRequestError, match=r"^service: host 'web1' has no service 'x'"):
        await service.schedule_downtime("web1", "x", T0, T0 + 10, "ann", "")
    downtime = await service.schedule_downtime("web1", None, T0, T0 + 3600, "ann", "patching")
    assert inbox.kinds() == [N.DOWNTIME_START]
    assert service.silenced("web1!ssh") == f"in downtime {downtime.id}"
    assert [d.id for d in await service.list_downtimes()] == [downtime.id]
    cancelled = await service.cancel_downtime(downtime.id)
    assert cancelled.cancelled_at == pytest.approx(T0)
    assert inbox.kinds() == [N.DOWNTIME_START, N.DOWNTIME_END]
    assert await service.list_downtimes() == []
    assert len(await service.list_downtimes(include_past=True)) == 1
    with pytest.raises(AlarmNotFound):
        await service.cancel_downtime(downtime.id)


async def test_thresholds_feed_metric_alarms_and_no_data(db: store.Database) -> None:
    clock, inbox = Clock(), Inbox()
    service = await started(db, clock, inbox)
    record = CONFIG[KEY]
    outcome = CheckOutcome(
        state=CheckState.OK, output="HTTP OK", metrics=(Metric(label="time", value=3.0),)
    )
    interpreted = service.interpret(record, outcome, T0)
    assert interpreted.state is CheckState.CRITICAL
    soft = status(KEY, CRIT, T0, state_type=SOFT)  # max_attempts 3: not hard yet
    service.observe(Observed(statuses=(soft,)), T0)
    (alarm,) = service.book.alarms()
    assert alarm.metric == "time" and alarm.state == "CRITICAL"
    service.interpret(record, CheckOutcome(state=CheckState.OK, output="no perfdata"), T0 + 1)
    service.observe(Observed(), T0 + 1)
    service.tick(T0 + 300)
    assert service.book.alarms()[0].state == "UNKNOWN"
    assert inbox.kinds() == [N.PROBLEM]


async def test_run_ticks_and_saves_until_cancelled(db: store.Database) -> None:
    clock, inbox = Clock(), Inbox()
    service = AlarmService(db, inbox, clock=clock, tick_interval=0.01)
    await service.start()
    service.observe(Observed(checks=checks(rec("web1", renotify=60)), loading=True), T0)
    service.observe(went_critical(T0), T0)
    task = asyncio.create_task(service.run())
    clock.now = T0 + 60
    await wait_until(lambda: N.REMINDER in inbox.kinds(), what="a reminder")

    async def saved() -> bool:
        async with db.session() as session:
            found = await alarm_store.list_alarms(session)
        return bool(found) and found[0].last_notified_at == pytest.approx(T0 + 60)

    await wait_until(saved, what="the reminder saved")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    history = await service.list_alarms(open_only=False)
    assert [a.key for a in history] == [KEY]
