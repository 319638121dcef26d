"""Alarms, their timelines and downtimes in the store, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from tests.unit.alarms.helpers import CRIT, T0, Inbox, change, checks, rec, status
from watchkeeper import store
from watchkeeper.alarms import repository as alarm_store
from watchkeeper.alarms.lifecycle import AlarmBook
from watchkeeper.alarms.thresholds import MetricSignal, SignalKind
from watchkeeper.alarms.values import AlarmKind, EventKind
from watchkeeper.notify.notification import NotificationKind as N
from watchkeeper.results import CheckState

KEY = "web1!http"


async def test_a_new_book_after_a_restart_has_the_same_alarms_and_downtimes(
    db: store.Database,
) -> None:
    inbox = Inbox()
    book = AlarmBook(inbox)
    book.configure(checks(rec("web1"), rec("web2")), T0)
    book.state_change(change(KEY, CRIT, T0), T0)
    book.metric_signal(
        MetricSignal(
            kind=SignalKind.BREACH,
            key="web2!http",
            metric="time",
            at=T0,
            state=CheckState.WARNING,
            value=1.5,
            reason="time=1.5s above warning 1",
        ),
        T0,
    )
    book.acknowledge(KEY, author="ann", comment="on it", now=T0 + 1, sticky=False, expires=T0 + 900)
    downtime = await alarm_store.insert_downtime(
        db,
        host="web2",
        service=None,
        start=T0 + 10,
        end=T0 + 3600,
        author="bob",
        comment="patching",
        created_at=T0,
    )
    past = await alarm_store.insert_downtime(
        db,
        host="web2",
        service="http",
        start=T0 - 100,
        end=T0 - 50,
        author="bob",
        comment="",
        created_at=T0 - 200,
    )
    book.add_downtime(downtime, T0 + 20)
    changes = book.take_changes()
    await alarm_store.save_alarms(db, changes.alarms, changes.events)
    await alarm_store.save_alarms(db, changes.alarms)  # an upsert: saving twice is harmless

    async with db.session() as session:
        open_alarms = await alarm_store.list_alarms(session)
        downtimes = await alarm_store.list_downtimes(session, live_at=T0 + 30)
        next_id = await alarm_store.next_alarm_id(session)
        events = await alarm_store.list_alarm_events(session, 1)
    assert sorted(open_alarms, key=lambda a: a.id) == sorted(book.alarms(), key=lambda a: a.id)
    assert [d.id for d in downtimes] == [downtime.id] and past.id != downtime.id
    assert downtimes[0] == downtime
    assert next_id == 3
    assert [e.kind for e in events] == [
        EventKind.OPENED,
        EventKind.NOTIFIED,
        EventKind.ACKNOWLEDGED,
        EventKind.NOTIFIED,  # the ACKNOWLEDGEMENT notification
    ]

    restarted = AlarmBook(inbox, next_id=1)
    restarted.load(open_alarms, downtimes, T0 + 30, next_id=next_id)
    restarted.configure(checks(rec("web1"), rec("web2")), T0 + 30)
    assert restarted.alarms() == book.alarms()
    assert restarted.silenced(KEY, T0 + 30) == "acknowledged by ann"
    assert restarted.silenced("web2!http", T0 + 30) == f"in downtime {downtime.id}"
    metric = restarted.alarms(key="web2!http")[0]
    assert (metric.kind, metric.metric, metric.state) == (AlarmKind.METRIC, "time", "WARNING")
    # A saved status of the same problem neither reopens nor renotifies.
    sent = len(inbox.sent)
    restarted.restore_status(status(KEY, CRIT, T0), T0 + 30)
    assert len(restarted.alarms()) == 2 and len(inbox.sent) == sent
    # New alarms continue the saved ids.
    restarted.state_change(change("web1!other", CRIT, T0 + 40), T0 + 40)
    assert max(a.id for a in restarted.alarms()) == 3


async def test_resolved_alarms_stay_in_the_history_and_cancelled_downtimes_are_marked(
    db: store.Database,
) -> None:
    inbox = Inbox()
    book = AlarmBook(inbox)
    book.configure(checks(rec("web1")), T0)
    book.state_change(change(KEY, CRIT, T0), T0)
    book.state_change(change(KEY, CheckState.OK, T0 + 60, frm=CRIT), T0 + 60)
    assert inbox.kinds() == [N.PROBLEM, N.RECOVERY]
    changes = book.take_changes()
    await alarm_store.save_alarms(db, changes.alarms, changes.events)
    downtime = await alarm_store.insert_downtime(
        db,
        host="web1",
        service=None,
        start=T0,
        end=T0 + 60,
        author="a",
        comment="",
        created_at=T0,
    )
    cancelled = await alarm_store.cancel_downtime(db, downtime.id, T0 + 5)
    assert cancelled is not None and cancelled.cancelled_at == pytest.approx(T0 + 5)
    assert await alarm_store.cancel_downtime(db, downtime.id, T0 + 6) is None
    async with db.session() as session:
        assert await alarm_store.list_alarms(session) == []
        (resolved,) = await alarm_store.list_alarms(session, open_only=False, key=KEY)
        assert await alarm_store.list_downtimes(session) == []
        assert len(await alarm_store.list_downtimes(session, include_cancelled=True)) == 1
        assert await alarm_store.get_alarm(session, resolved.id) == resolved
    assert resolved.resolved_at == pytest.approx(T0 + 60) and resolved.notified
