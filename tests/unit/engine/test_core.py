"""The engine end to end on a fake clock: events in, decisions out."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.unit.engine.helpers import (
    CRIT,
    OK,
    T0,
    WARN,
    FakeWorkers,
    answer,
    record,
    run_until,
    started,
)
from watchkeeper.document.diff import Delta, compare
from watchkeeper.document.normalize import CheckRecord
from watchkeeper.engine import CheckStatus, Engine, HostState, StateType, ZoneHealth, apply
from watchkeeper.results import CheckState


def test_a_problem_is_retried_at_retry_interval_until_hard_then_recovers() -> None:
    r = record("web", "http", interval=60, retry_interval=15, max_attempts=3)
    engine = started([r])
    workers = FakeWorkers(engine, {r.key: CRIT})
    now = workers.run(T0, T0 + 200)
    first, second, third, fourth = workers.times(r.key)[:4]
    assert T0 <= first < T0 + 60
    assert second == pytest.approx(first + 0.5 + 15, abs=1)  # retry after the result
    assert third == pytest.approx(second + 0.5 + 15, abs=1)
    assert fourth - third >= 30  # hard: back to the normal interval, on its phase
    status = engine.statuses[r.key]
    assert (status.state, status.state_type, status.attempt) == (
        CheckState.CRITICAL,
        StateType.HARD,
        3,
    )
    assert [c[1:] for c in workers.changes(r.key)] == [
        ("CRITICAL", "soft", False),
        ("CRITICAL", "hard", True),
    ]
    assert workers.changes(r.key)[1][0] == pytest.approx(third + 0.5)
    workers.results[r.key] = OK
    workers.run(now, now + 120)
    assert workers.changes(r.key)[-1][1:] == ("OK", "hard", True)  # a hard recovery
    assert not engine.statuses[r.key].is_problem


def test_a_hard_problem_changing_state_is_a_hard_change() -> None:
    r = record("web", "http", max_attempts=1)
    engine = started([r])
    workers = FakeWorkers(engine, {r.key: CRIT})
    now = workers.run(T0, T0 + 60)
    workers.results[r.key] = WARN
    workers.run(now, now + 60)
    assert [c[1:] for c in workers.changes(r.key)] == [
        ("CRITICAL", "hard", True),
        ("WARNING", "hard", True),
    ]


def test_a_timeout_is_unknown_and_the_late_result_is_ignored() -> None:
    r = record("web", "http", timeout=10)
    engine = started([r])
    decision = run_until(engine, r.key, T0)
    assert engine.tick(decision.deadline - 0.1).statuses == ()
    step = engine.tick(decision.deadline)
    [status] = step.statuses
    assert status.state is CheckState.UNKNOWN
    assert status.output == "timed out: no result within 15s"
    assert status.retrying
    late = answer(engine, decision, OK, after=20)
    assert not late and late.statuses == ()
    assert engine.statuses[r.key].state is CheckState.UNKNOWN


def test_a_check_that_cannot_be_dispatched_goes_stale() -> None:
    r = record("web", "http", interval=60, timeout=10)
    engine = started([r])
    assert engine.tick(T0 + 129, limit=0).statuses == ()  # overloaded: nothing dispatched
    step = engine.tick(T0 + 131, limit=0)
    [status] = step.statuses
    assert (status.state, status.stale, status.output) == (
        CheckState.UNKNOWN,
        True,
        "stale: no result for 131s",
    )
    [change] = step.changes
    assert change.stale and change.at == T0 + 131
    # Once the backlog clears, the real result replaces it.
    decision = run_until(engine, r.key, T0 + 132)
    answer(engine, decision, OK)
    assert not engine.statuses[r.key].stale


def test_a_zone_without_worker_marks_its_checks_not_run_without_a_backlog() -> None:
    dmz = [record(f"d{i}", zone="dmz", interval=60, retry_interval=15) for i in range(20)]
    dc = [record(f"c{i}") for i in range(5)]
    engine = Engine(worker_grace=60)
    engine.load([*dmz, *dc], T0)
    engine.zone_online("dc1", T0)
    workers = FakeWorkers(engine)
    workers.run(T0, T0 + 59)
    assert all(engine.statuses[r.key].pending for r in dmz)  # still within the grace
    assert not any(engine.statuses[r.key].not_run for r in dmz)
    now = workers.run(T0 + 59, T0 + 3600)
    assert {d.zone for d in workers.dispatched} == {"dc1"}
    for r in dmz:
        status = engine.statuses[r.key]
        # No result is not a bad result: still pending, marked with the reason.
        assert (status.pending, status.stale, status.not_run) == (
            True,
            True,
            "no worker for zone dmz",
        )
        assert not status.is_problem
        assert engine.scheduler.in_flight(r.key) is None
    assert not [c for step in workers.steps for c in step.changes if c.key.startswith("d")]
    assert all(size <= 2 * 25 + 64 for size in engine.scheduler.heap_sizes())
    # The status changes once, when the mark is set; the rest costs nothing.
    marked = Counter(
        s.key for step in workers.steps for s in step.statuses if s.key.startswith("d")
    )
    assert set(marked.values()) == {1}

    engine.zone_online("dmz", now)
    workers.run(now, now + 60)
    assert {d.key for d in workers.dispatched if d.zone == "dmz"} == {r.key for r in dmz}
    for r in dmz:
        status = engine.statuses[r.key]
        assert (status.state, status.stale, status.not_run) == (CheckState.OK, False, "")


def test_a_zone_that_loses_its_last_worker_gets_the_grace_again() -> None:
    r = record("d", zone="dmz")
    engine = started([r], zones=["dmz"])
    workers = FakeWorkers(engine)
    workers.run(T0, T0 + 1000)
    assert engine.statuses[r.key].output == "OK"
    engine.zone_offline("dmz", T0 + 1000)
    assert not engine.zone_has_worker("dmz")
    workers.run(T0 + 1000, T0 + 1059)
    assert not engine.statuses[r.key].not_run
    workers.run(T0 + 1060, T0 + 1130)
    status = engine.statuses[r.key]
    assert (status.state, status.output, status.not_run) == (
        CheckState.OK,
        "OK",
        "no worker for zone dmz",
    )


def test_a_zone_has_a_health_of_its_own_reported_once_per_change() -> None:
    r = record("d", zone="dmz")
    engine = Engine(worker_grace=60)
    [loaded] = engine.load([r], T0).zones
    assert (loaded.zone, loaded.health, loaded.had_worker) == ("dmz", ZoneHealth.WAITING, False)
    assert engine.tick(T0 + 59).zones == ()
    [offline] = engine.tick(T0 + 60).zones
    assert (offline.health, offline.since, offline.no_worker_since) == (
        ZoneHealth.OFFLINE,
        T0 + 60,
        T0,
    )
    assert offline.is_problem and engine.tick(T0 + 61).zones == ()
    [online] = engine.zone_online("dmz", T0 + 70).zones
    assert (online.health, online.no_worker_since, online.had_worker) == (
        ZoneHealth.ONLINE,
        None,
        True,
    )
    assert engine.zone_online("dmz", T0 + 71).zones == ()
    [lost] = engine.zone_offline("dmz", T0 + 80).zones
    assert (lost.health, lost.no_worker_since, lost.had_worker) == (
        ZoneHealth.WAITING,
        T0 + 80,
        True,
    )
    assert engine.zones["dmz"] is lost


def test_a_zone_brought_by_an_import_gets_its_grace_from_the_import() -> None:
    old = record("c")
    engine = started([old])
    engine.tick(T0 + 3600)
    new = record("d", zone="lab")
    checks = {old.key: old, new.key: new}
    step = engine.apply_diff(Delta(added=(new.key,)), checks, T0 + 3600)
    assert [(z.zone, z.health) for z in step.zones] == [("lab", ZoneHealth.WAITING)]
    assert engine.tick(T0 + 3650).zones == ()  # not given up at once
    step = engine.apply_diff(Delta(removed=(new.key,)), {old.key: old}, T0 + 3700)
    assert set(engine.zones) == {"dc1"}


def test_a_host_whose_checks_cannot_run_stays_up_and_keeps_its_states() -> None:
    host = record("web", None, zone="dmz", max_attempts=1)
    http = record("web", "http", zone="dmz", max_attempts=3)
    engine = started([host, http], zones=["dmz"])
    workers = FakeWorkers(engine, {http.key: CRIT})
    now = workers.run(T0, T0 + 100)
    before = engine.statuses[http.key]
    assert (before.state, before.state_type) == (CheckState.CRITICAL, StateType.HARD)
    engine.zone_offline("dmz", now)
    workers.steps.clear()
    workers.run(now, now + 3600)
    assert engine.hosts["web"].state is HostState.UP
    after = engine.statuses[http.key]
    assert (after.state, after.state_type, after.attempt, after.output) == (
        before.state,
        before.state_type,
        before.attempt,
        before.output,
    )
    assert after.not_run == "no worker for zone dmz"
    assert engine.statuses[host.key].state is CheckState.OK
    assert not [c for s in workers.steps for c in (*s.changes, *s.host_changes)]


def test_a_dispatch_no_worker_took_keeps_the_state_and_ignores_a_late_result() -> None:
    r = record("web", "http", max_attempts=3)
    engine = started([r])
    first = run_until(engine, r.key, T0)
    answer(engine, first, CRIT)
    soft = engine.statuses[r.key]
    assert (soft.state_type, soft.attempt) == (StateType.SOFT, 1)
    second = run_until(engine, r.key, first.dispatched_at + 1)
    [marked] = engine.not_run(
        r.key, second.token, "all 4 slots taken", second.dispatched_at
    ).statuses
    assert (marked.state, marked.state_type, marked.attempt) == (
        CheckState.CRITICAL,
        StateType.SOFT,
        1,
    )
    assert (marked.stale, marked.not_run) == (True, "all 4 slots taken")
    assert not engine.not_run(r.key, second.token, "again", second.dispatched_at)
    assert not answer(engine, second, OK)  # the token was closed
    third = run_until(engine, r.key, second.dispatched_at + 1)
    assert third.dispatched_at - second.dispatched_at == pytest.approx(15, abs=1)  # retrying
    answer(engine, third, CRIT)
    again = engine.statuses[r.key]
    assert (again.attempt, again.stale, again.not_run) == (2, False, "")


def test_silence_explained_by_not_running_is_not_made_stale() -> None:
    r = record("web", "http", interval=60, timeout=10)
    engine = started([r])
    now = T0
    while now < T0 + 600:
        for decision in engine.tick(now).dispatch:
            engine.not_run(decision.key, decision.token, "all slots taken", now)
        now += 1
    status = engine.statuses[r.key]
    assert (status.pending, status.not_run) == (True, "all slots taken")
    assert not status.is_problem


def test_checks_held_for_a_late_worker_run_spread_out_and_never_go_stale() -> None:
    dmz = [record(f"d{i}", zone="dmz", interval=10, timeout=2) for i in range(50)]
    engine = Engine(worker_grace=60)
    engine.load(dmz, T0)
    workers = FakeWorkers(engine)
    workers.run(T0, T0 + 30, step=0.5)
    assert workers.dispatched == []
    assert all(engine.statuses[r.key].pending for r in dmz)  # not stale while waiting
    engine.zone_online("dmz", T0 + 30)
    workers.run(T0 + 30, T0 + 40.5, step=0.5)
    cycle = [d for d in workers.dispatched if d.planned_at < T0 + 40]
    assert sorted(Counter(d.key for d in cycle).values()) == [1] * 50
    assert max(Counter(int(d.dispatched_at) for d in cycle).values()) < 15


def test_after_the_grace_checks_are_marked_not_run_on_each_checks_phase() -> None:
    dmz = [record(f"d{i}", zone="dmz", interval=10) for i in range(50)]
    engine = Engine(worker_grace=60)
    engine.load(dmz, T0)
    first: dict[str, float] = {}
    now = T0
    while now < T0 + 70.5:
        for status in engine.tick(now).statuses:
            if status.not_run == "no worker for zone dmz":
                first.setdefault(status.key, now)
        now += 0.5
    assert len(first) == 50
    assert all(T0 + 60 <= t <= T0 + 70 for t in first.values())
    assert max(Counter(int(t) for t in first.values()).values()) < 15


def hosts_fixture() -> list[CheckRecord]:
    return [
        record("router", None),
        record("switch", None, parents=["router"]),
        record("server", None, parents=["switch"]),
        record("server", "http", parents=["switch"]),
        record("db", None, parents=["left", "right"]),
        record("left", None),
        record("right", None),
        record("db", "pg", parents=["left", "right"]),
    ]


def host_states(engine: Engine) -> dict[str, HostState]:
    return {h: s.state for h, s in engine.hosts.items()}


def test_unreachable_through_parents_and_services_flagged() -> None:
    records = hosts_fixture()
    engine = started(records)
    down = dict.fromkeys(["router", "switch", "server", "db", "left"], CRIT)
    workers = FakeWorkers(engine, down)
    now = workers.run(T0, T0 + 120)
    assert host_states(engine) == {
        "router": HostState.DOWN,
        "switch": HostState.UNREACHABLE,
        "server": HostState.UNREACHABLE,
        "db": HostState.DOWN,  # "right" is still up
        "left": HostState.DOWN,
        "right": HostState.UP,
    }
    assert engine.statuses["server!http"].host_problem
    assert engine.statuses["server!http"].state is CheckState.OK  # keeps its own state
    assert engine.statuses["db!pg"].host_problem
    assert not engine.statuses["server"].host_problem  # a host check is the host itself
    hard = [c for s in workers.steps for c in s.host_changes if c.hard]
    assert {(c.host, c.to_state) for c in hard} >= {
        ("router", HostState.DOWN),
        ("switch", HostState.UNREACHABLE),
    }
    assert not any(c.pages for c in hard if c.host in {"switch", "server"})

    workers.results.update(right=CRIT, router=OK)
    now = workers.run(now, now + 120)
    states = host_states(engine)
    assert states["db"] is HostState.UNREACHABLE  # both parents down now
    assert states["router"] is HostState.UP
    assert states["switch"] is HostState.DOWN  # its parent answers again: its own fault
    assert states["server"] is HostState.UNREACHABLE

    workers.results.clear()
    workers.run(now, now + 120)
    assert set(host_states(engine).values()) == {HostState.UP}
    assert not engine.statuses["server!http"].host_problem
    assert not engine.statuses["db!pg"].host_problem


def test_a_service_result_on_a_down_host_carries_the_flag_in_its_history() -> None:
    records = [record("h", None, max_attempts=1), record("h", "svc")]
    engine = started(records)
    workers = FakeWorkers(engine, {"h": CRIT, "h!svc": CRIT})
    workers.run(T0, T0 + 61)
    [first] = [c for s in workers.steps for c in s.changes if c.key == "h!svc"][:1]
    host_down_at = next(c.at for s in workers.steps for c in s.host_changes if c.host == "h")
    assert first.host_problem == (first.at > host_down_at)


def diff_of(old: list[CheckRecord], new: list[CheckRecord]) -> Delta:
    return compare({r.key: r.hash for r in old}, {r.key: r.hash for r in new})


def test_an_import_reschedules_only_what_changed_and_keeps_state() -> None:
    old = [record(f"h{i}", interval=60) for i in range(6)]
    engine = started(old)
    workers = FakeWorkers(engine, {"h1!svc": CRIT, "h2!svc": CRIT})
    now = workers.run(T0, T0 + 100)
    before = dict(engine.statuses)
    due_before = {r.key: engine.scheduler.next_due(r.key) for r in old}
    new = [
        old[0],
        record("h1", command="other"),  # changed, in a problem state
        old[2],
        record("h3", interval=10),  # changed interval
        old[4],
        record("h9"),  # added
    ]  # h5 removed
    delta = diff_of(old, new)
    assert delta == Delta(added=["h9!svc"], changed=["h1!svc", "h3!svc"], removed=["h5!svc"])
    step = engine.apply_diff(delta, {r.key: r for r in new}, now)
    assert step.removed == ("h5!svc",)
    assert "h5!svc" not in engine.statuses and "h5!svc" not in engine.scheduler
    for key in ("h0!svc", "h2!svc", "h4!svc"):
        assert engine.statuses[key] is before[key]
        assert engine.scheduler.next_due(key) == due_before[key]
    assert engine.statuses["h1!svc"] is before["h1!svc"]  # state and history times kept
    assert engine.statuses["h1!svc"].is_problem
    assert engine.scheduler.record("h1!svc").spec["check"]["command"] == "other"
    h3 = engine.scheduler.next_due("h3!svc")
    assert h3 is not None and now <= h3 < now + 10
    assert engine.statuses["h9!svc"].pending
    workers.run(now, now + 60)
    assert engine.statuses["h9!svc"].last_check is not None


def test_an_import_that_changes_parents_resolves_the_hosts_again() -> None:
    old = [record("core", None), record("edge", None, parents=[])]
    engine = started(old)
    workers = FakeWorkers(engine, {"core": CRIT, "edge": CRIT})
    now = workers.run(T0, T0 + 120)
    assert host_states(engine)["edge"] is HostState.DOWN
    new = [old[0], record("edge", None, parents=["core"])]
    step = engine.apply_diff(diff_of(old, new), {r.key: r for r in new}, now)
    assert host_states(engine)["edge"] is HostState.UNREACHABLE
    [change] = step.host_changes
    assert (change.host, change.to_state) == ("edge", HostState.UNREACHABLE)
    # Dropping the host check leaves a host without one: UP.
    newer = [new[0], record("edge", "svc")]
    engine.apply_diff(diff_of(new, newer), {r.key: r for r in newer}, now + 1)
    assert engine.hosts["edge"].state is HostState.UP
    assert not engine.statuses["edge!svc"].host_problem


def test_load_restores_saved_statuses_and_retries_soft_problems_soon() -> None:
    r = record("h", None, retry_interval=15)
    service = record("h", "svc")
    saved = apply(CheckStatus.initial("h", T0 - 500), CRIT, max_attempts=3, now=T0 - 400).status
    engine = Engine()
    step = engine.load([r, service], T0, statuses={"h": saved})
    assert engine.statuses["h"] is saved
    assert engine.hosts["h"].state is HostState.DOWN
    assert engine.statuses["h!svc"].host_problem
    assert {s.key for s in step.statuses} == {"h!svc"}
    due = engine.scheduler.next_due("h")
    assert due is not None and T0 <= due < T0 + 15
    assert engine.tick(T0 + 100, limit=0).statuses == ()  # freshness restarts at load


def test_first_runs_of_ten_thousand_checks_are_spread_over_the_interval() -> None:
    checks = [record(f"host{i:05d}", interval=60) for i in range(10_000)]
    engine = started(checks)
    workers = FakeWorkers(engine)
    workers.run(T0, T0 + 60.25, step=0.25, delay=0.1)  # the last tick is at T0 + 60
    first_cycle = [d for d in workers.dispatched if d.planned_at < T0 + 60]
    runs = Counter(d.key for d in first_cycle)
    assert len(runs) == 10_000 and set(runs.values()) == {1}
    per_second = Counter(int(d.planned_at - T0) for d in first_cycle)
    average = 10_000 / 60
    assert len(per_second) == 60
    assert max(per_second.values()) < 2 * average
    assert min(per_second.values()) > average / 2
    assert all(0 <= d.dispatched_at - d.planned_at < 0.25 for d in workers.dispatched)


def test_check_now_dispatches_at_the_next_tick_and_ignores_unknown_keys() -> None:
    r = record("h")
    engine = started([r])
    assert not engine.check_now("nope", T0)
    assert engine.check_now(r.key, T0 + 0.5)
    [decision] = engine.tick(T0 + 0.5).dispatch
    assert decision.key == r.key
    assert not engine.check_now(r.key, T0 + 0.6)  # already running
