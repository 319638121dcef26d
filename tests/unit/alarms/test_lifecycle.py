"""The alarm book with an injected clock: dedupe, lifecycle, silences and notifications."""

from __future__ import annotations

import pytest

from tests.unit.alarms.helpers import (
    CRIT,
    OK,
    SOFT,
    T0,
    WARN,
    Inbox,
    change,
    checks,
    host_change,
    host_status,
    rec,
    status,
)
from watchkeeper.alarms.lifecycle import AlarmBook
from watchkeeper.alarms.thresholds import ThresholdInterpreter
from watchkeeper.alarms.values import (
    Alarm,
    AlarmKind,
    AlarmNotFound,
    AlarmPhase,
    AlarmRequestError,
    Downtime,
    EventKind,
    NothingToAcknowledge,
)
from watchkeeper.engine import HostState, ZoneHealth, ZoneStatus
from watchkeeper.notify.notification import NotificationKind as N
from watchkeeper.results import CheckOutcome, CheckState, Metric

KEY = "web1!http"


def book_with(*records: object, inbox: Inbox | None = None) -> tuple[AlarmBook, Inbox]:
    inbox = inbox or Inbox()
    book = AlarmBook(inbox)
    book.configure(checks(*(records or (rec("web1"),))), T0)  # type: ignore[arg-type]
    return book, inbox


def critical(book: AlarmBook, at: float, key: str = KEY, frm: CheckState = OK) -> None:
    book.state_change(change(key, CRIT, at, frm=frm), at)
    book.check_status(status(key, CRIT, at), at)


def recover(book: AlarmBook, at: float, key: str = KEY, frm: CheckState = CRIT) -> None:
    book.state_change(change(key, OK, at, frm=frm), at)
    book.check_status(status(key, OK, at), at)


# --- opening, dedupe, severity, recovery ------------------------------------------------------


def test_soft_states_do_not_open_an_alarm() -> None:
    book, inbox = book_with()
    book.state_change(change(KEY, CRIT, T0, hard=False, to_type=SOFT), T0)
    book.check_status(status(KEY, CRIT, T0, state_type=SOFT), T0)
    book.state_change(change(KEY, OK, T0 + 15, frm=CRIT, hard=False), T0 + 15)
    assert book.alarms() == [] and inbox.sent == []


def test_a_hard_problem_opens_one_alarm_however_many_bad_results() -> None:
    book, inbox = book_with()
    critical(book, T0)
    for i in range(1, 10):
        book.check_status(status(KEY, CRIT, T0 + 60 * i), T0 + 60 * i)
    (alarm,) = book.alarms()
    assert (alarm.key, alarm.state, alarm.kind, alarm.phase) == (
        KEY,
        "CRITICAL",
        AlarmKind.STATE,
        AlarmPhase.OPEN,
    )
    assert inbox.kinds() == [N.PROBLEM]
    assert alarm.notified and alarm.last_notified_at == T0
    assert inbox.sent[0].channels == ("ops",) and inbox.sent[0].alarm_id == alarm.id


def test_a_severity_change_keeps_the_alarm_and_notifies_the_new_state() -> None:
    book, inbox = book_with()
    critical(book, T0)
    book.state_change(change(KEY, WARN, T0 + 60, frm=CRIT), T0 + 60)
    (alarm,) = book.alarms()
    assert alarm.state == "WARNING"
    assert inbox.kinds() == [N.PROBLEM, N.PROBLEM]
    assert inbox.sent[-1].state == "WARNING"
    events = [e.kind for e in book.take_changes().events]
    assert events == [
        EventKind.OPENED,
        EventKind.NOTIFIED,
        EventKind.STATE_CHANGED,
        EventKind.NOTIFIED,
    ]


def test_a_resolved_alarm_keeps_the_problems_output_and_the_recovery_says_its_own() -> None:
    book, inbox = book_with()
    book.state_change(change(KEY, CRIT, T0, output="CRITICAL - disk full"), T0)
    [opened] = book.alarms()
    book.state_change(change(KEY, OK, T0 + 60, frm=CRIT, output="OK - 40% free"), T0 + 60)
    resolved = book.get(opened.id)
    assert resolved is not None and resolved.output == "CRITICAL - disk full"
    assert [(n.kind, n.output) for n in inbox.sent] == [
        (N.PROBLEM, "CRITICAL - disk full"),
        (N.RECOVERY, "OK - 40% free"),
    ]


def test_recovery_resolves_and_a_new_problem_is_a_new_alarm() -> None:
    book, inbox = book_with()
    critical(book, T0)
    first = book.alarms()[0]
    recover(book, T0 + 60)
    assert book.alarms() == []
    resolved = book.get(first.id)
    assert resolved is not None and resolved.phase is AlarmPhase.RESOLVED
    assert resolved.resolved_at == T0 + 60
    assert inbox.kinds() == [N.PROBLEM, N.RECOVERY]
    assert inbox.sent[-1].state == "OK"
    critical(book, T0 + 120)
    (second,) = book.alarms()
    assert second.id == first.id + 1


def test_no_recovery_without_a_problem_sent() -> None:
    book, inbox = book_with(rec("web1", channels=()))
    critical(book, T0)
    recover(book, T0 + 60)
    assert inbox.sent == []
    (alarm,) = book.alarms(open_only=False)
    assert not alarm.notified and alarm.resolved_at == T0 + 60


# --- flapping ---------------------------------------------------------------------------------


def test_flapping_suppresses_problems_and_sends_start_and_stop() -> None:
    book, inbox = book_with()
    at, state = T0, OK
    for _ in range(8):  # OK <-> CRITICAL, every change hard (max_attempts 1)
        nxt = CRIT if state is OK else OK
        if nxt is CRIT:
            critical(book, at, frm=state)
        else:
            recover(book, at)
        at, state = at + 60, nxt
    assert N.FLAPPING_START in inbox.kinds()
    assert book.flapping(KEY) is not None
    assert book.silenced(KEY, at) == "flapping"
    after_start = inbox.kinds()[inbox.kinds().index(N.FLAPPING_START) + 1 :]
    assert N.PROBLEM not in after_start
    if state is OK:
        critical(book, at, frm=OK)
        at += 60
    (alarm,) = book.alarms()
    assert alarm.flapping and alarm.suppressed == "flapping" and not alarm.notified
    recover(book, at)
    inbox.take()
    for i in range(1, 22):
        book.check_status(status(KEY, OK, at + 60 * i), at + 60 * i)
    assert inbox.kinds() == [N.FLAPPING_STOP]
    assert book.flapping(KEY) is None and book.silenced(KEY, at + 2000) is None


def test_a_problem_told_before_flapping_gets_its_recovery_when_flapping_stops() -> None:
    book, inbox = book_with()
    at = T0
    while book.flapping(KEY) is None:  # flapping starts on the result of a new problem
        recover(book, at) if book.alarms() else critical(book, at)
        at += 60
    (alarm,) = book.alarms()
    assert alarm.notified and alarm.flapping and inbox.kinds()[-1] is N.FLAPPING_START
    recover(book, at)
    assert inbox.kinds()[-1] is N.FLAPPING_START  # no RECOVERY while flapping
    for i in range(1, 22):
        book.check_status(status(KEY, OK, at + 60 * i), at + 60 * i)
    assert inbox.kinds()[-2:] == [N.FLAPPING_STOP, N.RECOVERY]
    assert inbox.sent[-1].alarm_id == alarm.id


def test_statuses_heal_alarms_the_changes_missed() -> None:
    book, inbox = book_with()
    book.check_status(status(KEY, CRIT, T0), T0)  # hard problem, no change seen
    (alarm,) = book.alarms()
    assert alarm.state == "CRITICAL" and inbox.kinds() == [N.PROBLEM]
    book.check_status(status(KEY, OK, T0 + 60), T0 + 60)
    assert book.alarms() == [] and inbox.kinds() == [N.PROBLEM, N.RECOVERY]


# --- downtimes --------------------------------------------------------------------------------


def downtime(
    id_: int, start: float, end: float, *, host: str = "web1", service: str | None = None
) -> Downtime:
    return Downtime(
        id=id_,
        host=host,
        service=service,
        start=start,
        end=end,
        author="ann",
        comment="kernel upgrade",
        created_at=T0,
    )


def test_downtime_start_and_end_silence_and_notify() -> None:
    book, inbox = book_with()
    book.add_downtime(downtime(12, T0 + 100, T0 + 200), T0)
    assert book.silenced(KEY, T0 + 50) is None
    book.tick(T0 + 100)
    assert inbox.take() == [N.DOWNTIME_START]
    assert book.silenced(KEY, T0 + 100) == "in downtime 12"
    critical(book, T0 + 110)
    (alarm,) = book.alarms()
    assert alarm.suppressed == "in downtime 12" and not alarm.notified
    assert inbox.sent == []
    book.tick(T0 + 200)
    assert inbox.take() == [N.DOWNTIME_END]
    assert book.alarms()[0].suppressed is None
    # The held PROBLEM goes out with the next result, as Nagios does.
    book.check_status(status(KEY, CRIT, T0 + 260), T0 + 260)
    assert inbox.kinds() == [N.PROBLEM]


def test_host_downtime_covers_its_services_not_other_hosts() -> None:
    book, inbox = book_with(rec("web1"), rec("web1", None), rec("web2"))
    book.add_downtime(downtime(3, T0, T0 + 3600), T0)
    assert book.silenced("web1!http", T0) == "in downtime 3"
    assert book.silenced("web1", T0) == "in downtime 3"
    assert book.silenced("web2!http", T0) is None
    assert inbox.kinds() == [N.DOWNTIME_START]
    assert book.downtimes(T0)[0].id == 3


def test_service_downtime_covers_only_that_service() -> None:
    book, _ = book_with(rec("web1"), rec("web1", "ssh"))
    book.add_downtime(downtime(4, T0, T0 + 60, service="http"), T0)
    assert book.silenced("web1!http", T0) == "in downtime 4"
    assert book.silenced("web1!ssh", T0) is None


def test_cancelling_a_downtime_ends_it_now() -> None:
    book, inbox = book_with()
    book.add_downtime(downtime(5, T0, T0 + 3600), T0)
    cancelled = book.cancel_downtime(5, T0 + 10)
    assert cancelled.cancelled_at == T0 + 10
    assert book.silenced(KEY, T0 + 11) is None
    assert inbox.kinds() == [N.DOWNTIME_START, N.DOWNTIME_END]
    with pytest.raises(AlarmNotFound, match="no scheduled downtime 5"):
        book.cancel_downtime(5, T0 + 20)


def test_no_recovery_notification_inside_a_downtime() -> None:
    book, inbox = book_with()
    critical(book, T0)
    book.add_downtime(downtime(6, T0 + 10, T0 + 3600), T0 + 10)
    inbox.take()
    recover(book, T0 + 20)
    assert inbox.sent == []


# --- acknowledgements -------------------------------------------------------------------------


def test_non_sticky_ack_is_cleared_by_another_problem_state() -> None:
    book, inbox = book_with()
    critical(book, T0)
    (acked,) = book.acknowledge(KEY, author="ann", comment="on it", now=T0 + 5, sticky=False)
    assert acked.phase is AlarmPhase.ACKNOWLEDGED
    assert book.silenced(KEY, T0 + 6) == "acknowledged by ann"
    assert inbox.kinds() == [N.PROBLEM, N.ACKNOWLEDGEMENT]
    assert inbox.sent[-1].details["author"] == "ann"
    book.state_change(change(KEY, WARN, T0 + 60, frm=CRIT), T0 + 60)
    (alarm,) = book.alarms()
    assert alarm.acknowledgement is None and alarm.phase is AlarmPhase.OPEN
    assert inbox.kinds()[-1] is N.PROBLEM


def test_sticky_ack_lasts_until_recovery() -> None:
    book, inbox = book_with()
    critical(book, T0)
    book.acknowledge(KEY, author="ann", comment="on it", now=T0 + 5)
    book.state_change(change(KEY, WARN, T0 + 60, frm=CRIT), T0 + 60)
    assert book.alarms()[0].acknowledgement is not None
    assert inbox.kinds() == [N.PROBLEM, N.ACKNOWLEDGEMENT]
    recover(book, T0 + 120, frm=WARN)
    assert inbox.kinds()[-1] is N.RECOVERY  # the recovery still goes out
    critical(book, T0 + 180)
    assert book.alarms()[0].acknowledgement is None  # a new alarm, not acknowledged


def test_expiring_ack_ends_and_reminders_resume() -> None:
    book, inbox = book_with(rec("web1", renotify=600))
    critical(book, T0)
    book.acknowledge(KEY, author="bob", comment="", now=T0 + 1, expires=T0 + 1000)
    book.tick(T0 + 700)
    assert N.REMINDER not in inbox.kinds()
    book.tick(T0 + 1000)
    assert book.alarms()[0].acknowledgement is None
    assert inbox.kinds()[-1] is N.REMINDER
    events = [e.kind for e in book.take_changes().events]
    assert EventKind.UNACKNOWLEDGED in events


def test_ack_needs_an_open_alarm_and_a_future_expiry() -> None:
    book, _ = book_with()
    with pytest.raises(NothingToAcknowledge, match="no open alarm"):
        book.acknowledge(KEY, author="ann", comment="", now=T0)
    critical(book, T0)
    with pytest.raises(AlarmRequestError, match="expires"):
        book.acknowledge(KEY, author="ann", comment="", now=T0, expires=T0 - 1)
    with pytest.raises(NothingToAcknowledge):
        book.unacknowledge(KEY, T0)
    book.acknowledge(KEY, author="ann", comment="", now=T0)
    (alarm,) = book.unacknowledge(KEY, T0 + 1)
    assert alarm.acknowledgement is None


# --- parents ----------------------------------------------------------------------------------


def test_unreachable_host_and_its_services_page_nobody() -> None:
    book, inbox = book_with(rec("router", None), rec("web1", None), rec("web1"))
    book.host_change(host_change("router", HostState.DOWN, T0), T0)
    book.host_change(host_change("web1", HostState.UNREACHABLE, T0), T0)
    critical(book, T0 + 30)
    assert inbox.kinds() == [N.PROBLEM]
    assert inbox.sent[0].key == "router" and inbox.sent[0].state == "DOWN"
    web1 = book.alarms(key="web1")[0]
    service = book.alarms(key=KEY)[0]
    assert web1.state == "UNREACHABLE" and web1.suppressed == "host web1 is UNREACHABLE"
    assert service.suppressed == "host web1 is UNREACHABLE" and not service.notified
    assert book.silenced(KEY, T0 + 30) == "host web1 is UNREACHABLE"
    assert book.silenced("router", T0 + 30) is None
    # web1 comes back: its alarm resolves quietly (nobody was told), the service's
    # PROBLEM waits for the service's next result.
    book.host_status(host_status("web1", HostState.UP, T0 + 60), T0 + 60)
    book.host_change(host_change("web1", HostState.UP, T0 + 60, frm=HostState.UNREACHABLE), T0 + 60)
    assert inbox.kinds() == [N.PROBLEM]
    book.check_status(status(KEY, CRIT, T0 + 90), T0 + 90)
    assert inbox.kinds() == [N.PROBLEM, N.PROBLEM] and inbox.sent[-1].key == KEY


def test_a_down_host_suppresses_its_services() -> None:
    book, inbox = book_with(rec("web1", None), rec("web1"))
    book.host_change(host_change("web1", HostState.DOWN, T0), T0)
    critical(book, T0 + 1)
    assert [n.key for n in inbox.sent] == ["web1"]
    assert book.alarms(key=KEY)[0].suppressed == "host web1 is DOWN"


# --- re-notification --------------------------------------------------------------------------


def test_reminders_every_renotify_seconds_while_unacknowledged() -> None:
    book, inbox = book_with(rec("web1", renotify=600))
    critical(book, T0)
    for at in (T0 + 599, T0 + 600, T0 + 1199, T0 + 1200):
        book.tick(at)
    assert inbox.kinds() == [N.PROBLEM, N.REMINDER, N.REMINDER]
    book.acknowledge(KEY, author="ann", comment="", now=T0 + 1300)
    book.tick(T0 + 5000)
    assert inbox.kinds()[-1] is N.ACKNOWLEDGEMENT


def test_no_reminders_without_renotify() -> None:
    book, inbox = book_with()
    critical(book, T0)
    book.tick(T0 + 86_400)
    assert inbox.kinds() == [N.PROBLEM]


# --- metric alarms ----------------------------------------------------------------------------


def result(value: float | None) -> CheckOutcome:
    metrics = () if value is None else (Metric(label="time", value=value, uom="s"),)
    return CheckOutcome(state=CheckState.OK, output="HTTP OK", metrics=metrics)


def test_metric_alarm_with_consecutive_three_and_no_data() -> None:
    record = rec(
        "web1",
        thresholds={"time": {"critical": "2", "consecutive": 3, "no_data": 300}},
    )
    book, inbox = book_with(record)
    interpreter = ThresholdInterpreter()

    def feed(value: float | None, at: float) -> None:
        interpreter.interpret(record, result(value), at)
        for signal in interpreter.take_signals():
            book.metric_signal(signal, at)

    feed(3, T0)
    feed(3, T0 + 60)
    assert book.alarms() == []
    feed(3, T0 + 120)
    (alarm,) = book.alarms()
    assert (alarm.kind, alarm.metric, alarm.state) == (AlarmKind.METRIC, "time", "CRITICAL")
    assert "time=3s above critical 2" in alarm.output
    assert inbox.sent == []  # breaches are records; the check's state alarm pages
    feed(1, T0 + 180)
    assert book.alarms() == []

    feed(None, T0 + 240)
    for signal in interpreter.tick(T0 + 479):
        book.metric_signal(signal, T0 + 479)
    assert book.alarms() == []
    for signal in interpreter.tick(T0 + 480):
        book.metric_signal(signal, T0 + 480)
    (no_data,) = book.alarms()
    assert no_data.state == "UNKNOWN" and no_data.metric == "time"
    assert no_data.id == alarm.id + 1
    assert inbox.kinds() == [N.PROBLEM]
    assert inbox.sent[0].details["metric"] == "time"
    feed(1, T0 + 500)
    assert book.alarms() == [] and inbox.kinds() == [N.PROBLEM, N.RECOVERY]


# --- restart, removal, persistence hand-off ---------------------------------------------------


def saved_alarm(id_: int, key: str = KEY, state: str = "CRITICAL") -> Alarm:
    host, _, service = key.partition("!")
    return Alarm(
        id=id_,
        key=key,
        host=host,
        service=service or None,
        state=state,
        opened_at=T0,
        notified=True,
    )


def test_restore_does_not_reopen_or_renotify_a_saved_alarm() -> None:
    book, inbox = book_with()
    book.load([saved_alarm(41)], [downtime(2, T0 - 100, T0 + 100)], T0, next_id=42)
    book.restore_status(status(KEY, CRIT, T0 - 5), T0)
    assert [a.id for a in book.alarms()] == [41]
    assert inbox.sent == []  # the downtime had started already: not announced again
    assert book.silenced(KEY, T0) == "in downtime 2"
    recover(book, T0 + 200)
    critical(book, T0 + 300)
    assert book.alarms()[0].id == 42


def test_restore_reconciles_both_ways() -> None:
    book, inbox = book_with(rec("web1"), rec("web2"))
    book.load([saved_alarm(7)], [], T0, next_id=8)
    book.restore_status(status(KEY, OK, T0 - 5), T0)  # recovered before the restart
    book.restore_status(status("web2!http", CRIT, T0 - 5), T0)  # no alarm was saved
    assert inbox.kinds() == [N.RECOVERY]
    (alarm,) = book.alarms()
    assert alarm.key == "web2!http" and not alarm.notified
    book.check_status(status("web2!http", CRIT, T0 + 60), T0 + 60)
    assert inbox.kinds() == [N.RECOVERY, N.PROBLEM]


def test_removed_checks_resolve_quietly() -> None:
    book, inbox = book_with(rec("web1"), rec("web2"))
    critical(book, T0)
    book.configure(checks(rec("web2")), T0 + 10)
    assert book.alarms() == []
    assert inbox.kinds() == [N.PROBLEM]


def test_take_changes_hands_over_each_changed_alarm_once() -> None:
    book, _ = book_with()
    critical(book, T0)
    changes = book.take_changes()
    assert [a.id for a in changes.alarms] == [1] and changes.alarms[0].notified
    assert not book.take_changes()


# --- zones without a worker -------------------------------------------------------------------


def zone(name: str, health: ZoneHealth, at: float, since: float | None = None) -> ZoneStatus:
    waiting = health is not ZoneHealth.ONLINE
    return ZoneStatus(
        zone=name, health=health, since=at, no_worker_since=since if waiting else None
    )


def test_a_zone_without_worker_is_an_alarm_of_its_own_told_to_its_checks_channels() -> None:
    book, inbox = book_with(
        rec("web1", channels=("ops",)),
        rec("db1", channels=("dba", "ops")),
        rec("lab1", channels=("lab",), zone="lab"),
    )
    book.zone_status(zone("z", ZoneHealth.WAITING, T0, since=T0), T0)
    assert book.alarms() == [] and inbox.sent == []
    book.zone_status(zone("z", ZoneHealth.OFFLINE, T0 + 60, since=T0), T0 + 60)
    (alarm,) = book.alarms()
    assert (alarm.key, alarm.kind, alarm.state, alarm.host, alarm.zone) == (
        "zone:z",
        AlarmKind.ZONE,
        "OFFLINE",
        "",
        "z",
    )
    (problem,) = inbox.sent
    assert problem.subject == "PROBLEM: zone:z is OFFLINE"
    assert problem.channels == ("dba", "ops")
    assert problem.output == "no worker for zone z for 60s"
    book.zone_status(zone("z", ZoneHealth.ONLINE, T0 + 90), T0 + 90)
    assert book.alarms() == []
    assert [(n.kind, n.state) for n in inbox.sent[1:]] == [(N.RECOVERY, "ONLINE")]


def test_a_restored_zone_alarm_resolves_when_a_worker_comes() -> None:
    book, inbox = book_with(rec("web1"))
    saved = Alarm(
        id=7, key="zone:z", kind=AlarmKind.ZONE, host="", state="OFFLINE", opened_at=T0,
        notified=True,
    )  # fmt: skip
    book.load([saved], [], T0 + 100, next_id=8)
    book.zone_status(zone("z", ZoneHealth.WAITING, T0 + 100, since=T0 + 100), T0 + 100)
    assert [a.id for a in book.alarms()] == [7]  # a restart is not a recovery
    book.zone_status(zone("z", ZoneHealth.ONLINE, T0 + 170), T0 + 170)
    assert book.alarms() == [] and inbox.kinds() == [N.RECOVERY]


def test_a_missing_agent_is_its_hosts_alarm_held_while_the_host_is_down() -> None:
    book, inbox = book_with(
        rec("web1", "disk", channels=("unix",), agent=True),
        rec("web1", "http", channels=("web",)),
    )
    book.zone_status(zone("agent:web1", ZoneHealth.OFFLINE, T0 + 60, since=T0), T0 + 60)
    (alarm,) = book.alarms()
    assert (alarm.key, alarm.kind, alarm.host, alarm.zone) == (
        "zone:agent:web1",
        AlarmKind.ZONE,
        "web1",
        "agent:web1",
    )
    (problem,) = inbox.sent
    assert problem.channels == ("unix",)  # who hears of the agent's checks, not of the host's
    assert problem.output == "no agent connected for host web1 for 60s"
    book.zone_status(zone("agent:web1", ZoneHealth.ONLINE, T0 + 90), T0 + 90)
    assert inbox.kinds() == [N.PROBLEM, N.RECOVERY]
    # A DOWN host explains its agent's absence: the agent's alarm opens but does not page.
    book.host_status(host_status("web1", HostState.DOWN, T0 + 100), T0 + 100)
    book.zone_status(zone("agent:web1", ZoneHealth.OFFLINE, T0 + 200, since=T0 + 100), T0 + 200)
    assert [a.key for a in book.alarms()] == ["zone:agent:web1"]
    assert inbox.kinds() == [N.PROBLEM, N.RECOVERY]
    assert book.silenced("zone:agent:web1", T0 + 200) == "host web1 is DOWN"


def test_an_import_that_empties_a_zone_resolves_its_alarm_quietly() -> None:
    book, inbox = book_with(rec("web1"), rec("lab1", zone="lab"))
    book.zone_status(zone("lab", ZoneHealth.OFFLINE, T0, since=T0 - 60), T0)
    assert [a.key for a in book.alarms()] == ["zone:lab"]
    inbox.sent.clear()
    book.configure(checks(rec("web1")), T0 + 10)
    assert book.alarms() == [] and inbox.sent == []
    (resolved,) = book.alarms(open_only=False)
    assert resolved.resolved_at == T0 + 10
