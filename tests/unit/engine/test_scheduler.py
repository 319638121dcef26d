"""Due times, dispatch tokens, deadlines and freshness, on a fake clock."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.engine.helpers import CRIT, OK, T0, record
from watchkeeper.engine import CheckStatus, Scheduler, Timing, apply, next_slot, spread

OK_STATUS = apply(CheckStatus.initial("k", T0), OK, max_attempts=3, now=T0).status
SOFT_STATUS = apply(OK_STATUS, CRIT, max_attempts=3, now=T0).status


def loaded(*records: object, now: float = T0) -> Scheduler:
    scheduler = Scheduler()
    scheduler.load([r for r in records if r is not None], now)  # type: ignore[misc]
    return scheduler


def test_spread_is_stable_and_in_range() -> None:
    assert spread("web!http", 60) == spread("web!http", 60)
    assert spread("web!http", 60) != spread("web!ssh", 60)
    assert all(0 <= spread(f"h{i}", 60) < 60 for i in range(1000))


@given(
    st.floats(min_value=0, max_value=4e9),
    st.floats(min_value=0, max_value=3600),
    st.floats(min_value=0.5, max_value=86_400),
)
def test_next_slot_is_the_first_phase_slot_at_or_after(
    at: float, phase: float, interval: float
) -> None:
    phase = phase % interval
    slot = next_slot(at, phase, interval)
    assert at <= slot < at + interval * (1 + 1e-9) + 1e-6
    cycles = (slot - phase) / interval
    assert math.isclose(cycles, round(cycles), abs_tol=1e-6 * max(1.0, abs(cycles)))


def test_timing_from_a_record_and_its_validation() -> None:
    timing = Timing.from_record(record("h", interval=30, retry_interval=5, timeout=4))
    assert (timing.interval, timing.retry_interval, timing.timeout, timing.max_attempts) == (
        30,
        5,
        4,
        3,
    )
    assert timing.freshness == 2 * 30 + 4
    bare = dataclasses.replace(record("h"), spec={})
    assert Timing.from_record(bare) == Timing(
        interval=60, retry_interval=15, timeout=10, max_attempts=3
    )
    with pytest.raises(ValueError, match="invalid check timing"):
        Timing(interval=0, retry_interval=1, timeout=1, max_attempts=1)


def test_first_runs_are_spread_and_stable_across_restarts() -> None:
    records = [record(f"h{i}") for i in range(200)]
    first = loaded(*records)
    later = loaded(*records, now=T0 + 12_345.6)
    for r in records:
        due, again = first.next_due(r.key), later.next_due(r.key)
        assert due is not None and again is not None
        assert T0 <= due < T0 + 60
        # The same second of the cycle after a restart at any other time.
        assert math.isclose((again - due) % 60, 0, abs_tol=1e-6) or math.isclose(
            (again - due) % 60, 60, abs_tol=1e-6
        )


def test_a_due_check_is_dispatched_once_until_its_result() -> None:
    r = record("h")
    scheduler = loaded(r)
    due = scheduler.next_due(r.key)
    assert due is not None
    assert scheduler.due(due - 0.01) == []
    [decision] = scheduler.due(due + 1)
    assert decision.planned_at == due and decision.dispatched_at == due + 1
    assert decision.deadline == due + 1 + 10 + scheduler.deadline_grace
    assert decision.zone == "dc1" and decision.check is r
    assert scheduler.in_flight(r.key) == decision
    assert scheduler.next_due(r.key) is None
    # However long the result takes, the check is never dispatched a second time.
    assert scheduler.due(due + 600) == []
    with pytest.raises(RuntimeError, match="in flight"):
        scheduler.completed(r.key, OK_STATUS, due + 2)
    assert not scheduler.accept(r.key, decision.token + 1)
    assert scheduler.accept(r.key, decision.token)
    assert not scheduler.accept(r.key, decision.token)  # a duplicate result counts once
    assert scheduler.completed(r.key, OK_STATUS, due + 2) == pytest.approx(due + 60)


def test_a_soft_problem_is_retried_then_returns_to_its_phase() -> None:
    r = record("h", retry_interval=15)
    scheduler = loaded(r)
    slot = scheduler.next_due(r.key)
    assert slot is not None
    [d] = scheduler.due(slot)
    scheduler.accept(r.key, d.token)
    retry = scheduler.completed(r.key, SOFT_STATUS, slot + 2)
    assert retry == slot + 17
    [d] = scheduler.due(retry)
    scheduler.accept(r.key, d.token)
    back = scheduler.completed(r.key, OK_STATUS, retry + 1)
    # At least half an interval after the retry, on the phase: the slot after next.
    assert back == pytest.approx(slot + 60)
    [d] = scheduler.due(back)
    scheduler.accept(r.key, d.token)
    assert scheduler.completed(r.key, OK_STATUS, back + 0.5) == pytest.approx(slot + 120)


def test_a_run_longer_than_the_interval_skips_a_slot_rather_than_running_at_once() -> None:
    r = record("h", interval=60, timeout=90)
    scheduler = loaded(r)
    slot = scheduler.next_due(r.key)
    assert slot is not None
    [d] = scheduler.due(slot)
    scheduler.accept(r.key, d.token)
    assert scheduler.completed(r.key, OK_STATUS, slot + 70) == pytest.approx(slot + 120)


def test_an_expired_dispatch_is_reported_once_and_its_late_result_refused() -> None:
    r = record("h", timeout=10)
    scheduler = loaded(r)
    slot = scheduler.next_due(r.key)
    assert slot is not None
    [d] = scheduler.due(slot)
    assert scheduler.expired(d.deadline - 0.1) == []
    assert scheduler.expired(d.deadline) == [d]
    assert scheduler.expired(d.deadline + 100) == []
    assert scheduler.in_flight(r.key) is None
    assert not scheduler.accept(r.key, d.token)


def test_a_silent_check_goes_stale_once_per_freshness_period() -> None:
    r = record("h", interval=60, timeout=10)
    scheduler = Scheduler()
    scheduler.add(r, T0)
    freshness = Timing.from_record(r).freshness
    assert scheduler.stale(T0 + freshness - 1) == []
    assert scheduler.stale(T0 + freshness + 1) == [(r.key, freshness + 1)]
    assert scheduler.stale(T0 + freshness + 2) == []
    assert scheduler.stale(T0 + 2 * freshness + 1) == [(r.key, freshness)]


def test_a_result_restarts_the_freshness_clock() -> None:
    r = record("h")
    scheduler = loaded(r)
    slot = scheduler.next_due(r.key)
    assert slot is not None
    [d] = scheduler.due(slot)
    scheduler.accept(r.key, d.token)
    scheduler.completed(r.key, OK_STATUS, slot + 1)
    assert scheduler.stale(T0 + 130.5) == []
    assert scheduler.stale(slot + 1 + 130.5) == [(r.key, 130.5)]


def test_a_check_in_flight_is_left_to_its_deadline_not_called_stale() -> None:
    r = record("h", interval=10, retry_interval=5, timeout=100)
    scheduler = loaded(r)
    slot = scheduler.next_due(r.key)
    assert slot is not None
    [d] = scheduler.due(slot)
    assert scheduler.stale(T0 + 2 * 10 + 100 + 1) == []
    assert scheduler.expired(d.deadline) == [d]


def test_update_requeues_only_the_changed_check() -> None:
    a, b = record("a"), record("b")
    scheduler = loaded(a, b)
    due_a, due_b = scheduler.next_due(a.key), scheduler.next_due(b.key)
    now = T0 + 5
    scheduler.update(record("a", command="other"), now)
    assert scheduler.next_due(a.key) == next_slot(now, spread(a.key, 60), 60)
    assert scheduler.next_due(b.key) == due_b
    if due_a is not None and due_a >= now:
        assert scheduler.next_due(a.key) == pytest.approx(due_a)  # same interval, same slot
    scheduler.update(record("a", interval=10), now)
    new = scheduler.next_due(a.key)
    assert new is not None and now <= new < now + 10
    assert scheduler.timing(a.key).interval == 10
    assert scheduler.record(a.key).spec["interval"] == 10


def test_update_of_a_check_in_flight_waits_for_its_result() -> None:
    r = record("h")
    scheduler = loaded(r)
    slot = scheduler.next_due(r.key)
    assert slot is not None
    [d] = scheduler.due(slot)
    scheduler.update(record("h", interval=5), slot + 1)
    assert scheduler.due(slot + 100) == []
    assert scheduler.accept(r.key, d.token)
    due = scheduler.completed(r.key, OK_STATUS, slot + 2)
    assert slot + 2 <= due < slot + 2 + 5


def test_a_removed_check_is_never_dispatched_and_its_result_refused() -> None:
    a, b = record("a"), record("b")
    scheduler = loaded(a, b)
    [d] = [x for x in scheduler.due(T0 + 60) if x.key == a.key]
    scheduler.remove(a.key)
    scheduler.remove(b.key)
    assert a.key not in scheduler and len(scheduler) == 0
    assert not scheduler.accept(a.key, d.token)
    assert scheduler.due(T0 + 1000) == []
    assert scheduler.expired(T0 + 1000) == []
    assert scheduler.stale(T0 + 1000) == []


def test_limit_leaves_the_rest_due() -> None:
    scheduler = loaded(*(record(f"h{i}") for i in range(10)))
    assert len(scheduler.due(T0 + 60, limit=3)) == 3
    assert len(scheduler.due(T0 + 60)) == 7


def test_defer_takes_a_dispatch_back() -> None:
    r = record("h")
    scheduler = loaded(r)
    [d] = scheduler.due(T0 + 60)
    scheduler.defer(r.key, T0 + 100)
    assert scheduler.in_flight(r.key) is None
    assert not scheduler.accept(r.key, d.token)
    # Requeued on its phase, so checks held back together are released spread out.
    assert scheduler.next_due(r.key) == next_slot(T0 + 100, spread(r.key, 60), 60)


def test_heaps_stay_bounded_under_churn() -> None:
    records = [record(f"h{i}", interval=2, retry_interval=1, timeout=1) for i in range(50)]
    scheduler = loaded(*records)
    now = T0
    for i in range(400):
        now += 0.5
        for d in scheduler.due(now):
            scheduler.accept(d.key, d.token)
            scheduler.completed(d.key, SOFT_STATUS if i % 3 else OK_STATUS, now)
        scheduler.update(records[i % 50], now)
        scheduler.stale(now)
    assert all(size <= 2 * len(scheduler) + 64 for size in scheduler.heap_sizes())


def test_run_now_moves_a_queued_check_forward_but_not_one_in_flight() -> None:
    r = record("h")
    scheduler = loaded(r)
    slot = scheduler.next_due(r.key)
    assert slot is not None and slot > T0 + 1
    assert scheduler.run_now(r.key, T0 + 1)
    [decision] = scheduler.due(T0 + 1)
    assert decision.planned_at == T0 + 1
    # In flight: its result is as fresh as a new run would be, so nothing is queued twice.
    assert not scheduler.run_now(r.key, T0 + 2)
    assert scheduler.due(T0 + 3) == []
    assert scheduler.accept(r.key, decision.token)
    # After the result it returns to its phase: check now does not move the schedule.
    assert scheduler.completed(r.key, OK_STATUS, T0 + 2) == pytest.approx(slot)
