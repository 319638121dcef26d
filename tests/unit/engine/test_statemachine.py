"""The soft/hard state machine of one check, result by result."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.unit.engine.helpers import CRIT, OK, T0, UNKNOWN, WARN, outcome
from watchkeeper.engine import CheckStatus, StateChange, StateType, apply
from watchkeeper.results import CheckOutcome, CheckState


def feed(
    results: list[CheckOutcome], *, max_attempts: int = 3, step: float = 15.0
) -> tuple[CheckStatus, list[StateChange]]:
    status = CheckStatus.initial("web!http", T0)
    history: list[StateChange] = []
    for i, result in enumerate(results, start=1):
        transition = apply(status, result, max_attempts=max_attempts, now=T0 + i * step)
        status = transition.status
        if transition.change is not None:
            history.append(transition.change)
    return status, history


def test_a_new_check_is_pending_and_assumed_ok() -> None:
    status = CheckStatus.initial("web!http", T0)
    assert status.pending
    assert status.state is CheckState.OK
    assert status.state_type is StateType.HARD
    assert not status.is_problem
    assert status.log_context()["state"] == "PENDING"


def test_the_first_result_is_recorded_as_coming_from_pending() -> None:
    status, history = feed([OK])
    assert not status.pending
    assert status.last_check == T0 + 15
    [first] = history
    assert first.from_state is None and first.from_type is None
    assert first.to_state is CheckState.OK
    assert not first.hard  # the assumed state was OK: nothing to tell anyone


def test_a_problem_is_soft_until_max_attempts_then_hard() -> None:
    status, history = feed([OK, CRIT, CRIT])
    assert (status.state, status.state_type, status.attempt) == (
        CheckState.CRITICAL,
        StateType.SOFT,
        2,
    )
    assert status.retrying
    status, history = feed([OK, CRIT, CRIT, CRIT])
    assert (status.state_type, status.attempt) == (StateType.HARD, 3)
    assert status.is_hard_problem and not status.retrying
    assert [(c.to_state, c.to_type, c.hard, c.at) for c in history] == [
        (CheckState.OK, StateType.HARD, False, T0 + 15),
        (CheckState.CRITICAL, StateType.SOFT, False, T0 + 30),
        (CheckState.CRITICAL, StateType.HARD, True, T0 + 60),
    ]
    assert status.last_state_change == T0 + 30  # the state itself changed at the first failure
    assert status.last_hard_change == T0 + 60
    assert status.last_hard_state is CheckState.CRITICAL


def test_max_attempts_one_is_hard_at_once() -> None:
    status, history = feed([OK, CRIT], max_attempts=1)
    assert (status.state_type, status.attempt) == (StateType.HARD, 1)
    assert history[-1].hard


def test_a_soft_recovery_tells_nobody() -> None:
    status, history = feed([OK, CRIT, OK])
    assert (status.state, status.state_type, status.attempt) == (CheckState.OK, StateType.HARD, 1)
    recovery = history[-1]
    assert recovery.is_recovery
    assert not recovery.hard
    assert recovery.from_type is StateType.SOFT


def test_a_hard_recovery_is_a_hard_change() -> None:
    status, history = feed([OK, CRIT, CRIT, CRIT, OK])
    recovery = history[-1]
    assert recovery.is_recovery and recovery.hard
    assert (recovery.from_state, recovery.from_type) == (CheckState.CRITICAL, StateType.HARD)
    assert status.last_hard_state is CheckState.OK
    assert status.last_hard_change == T0 + 75


def test_a_hard_problem_changing_state_stays_hard_and_is_recorded() -> None:
    status, history = feed([OK, CRIT, CRIT, CRIT, WARN])
    assert (status.state, status.state_type) == (CheckState.WARNING, StateType.HARD)
    change = history[-1]
    assert (change.from_state, change.to_state) == (CheckState.CRITICAL, CheckState.WARNING)
    assert change.hard and change.to_type is StateType.HARD
    assert change.at == T0 + 75


def test_a_soft_problem_changing_state_counts_on() -> None:
    status, history = feed([OK, CRIT, WARN])
    assert (status.state, status.state_type, status.attempt) == (
        CheckState.WARNING,
        StateType.SOFT,
        2,
    )
    assert not history[-1].hard
    status, _ = feed([OK, CRIT, WARN, UNKNOWN])
    assert (status.state, status.state_type) == (CheckState.UNKNOWN, StateType.HARD)


def test_the_same_state_again_records_nothing() -> None:
    _, history = feed([OK, OK, OK, CRIT, CRIT, CRIT, CRIT, CRIT])
    assert len(history) == 3


def test_new_output_updates_the_status_without_a_change() -> None:
    status = CheckStatus.initial("k", T0)
    status = apply(status, OK, max_attempts=3, now=T0).status
    transition = apply(status, outcome(CheckState.OK, "fine"), max_attempts=3, now=T0 + 60)
    assert transition.change is None
    assert transition.status.output == "fine"
    assert transition.status.last_check == T0 + 60


def test_host_problem_and_stale_flags_travel_with_the_change() -> None:
    status = CheckStatus.initial("k", T0)
    t = apply(status, CRIT, max_attempts=3, now=T0, host_problem=True)
    assert t.status.host_problem and t.change is not None and t.change.host_problem
    t = apply(t.status, UNKNOWN, max_attempts=3, now=T0 + 1, stale=True)
    assert t.status.host_problem  # None keeps the flag
    assert t.status.stale and t.change is not None and t.change.stale
    t = apply(t.status, OK, max_attempts=3, now=T0 + 2, host_problem=False)
    assert not t.status.stale and not t.status.host_problem


def test_lowering_max_attempts_hardens_at_the_next_problem() -> None:
    status, _ = feed([OK, CRIT, CRIT], max_attempts=5)
    assert status.attempt == 2
    t = apply(status, CRIT, max_attempts=2, now=T0 + 100)
    assert (t.status.state_type, t.status.attempt) == (StateType.HARD, 2)


states = st.sampled_from(list(CheckState))


@given(st.lists(states, min_size=1, max_size=40), st.integers(min_value=1, max_value=6))
def test_invariants_hold_for_any_sequence(results: list[CheckState], max_attempts: int) -> None:
    status = CheckStatus.initial("k", T0)
    streak = 0
    for i, state in enumerate(results):
        before = status
        t = apply(status, outcome(state), max_attempts=max_attempts, now=T0 + i)
        status = t.status
        streak = streak + 1 if state.is_problem else 0
        assert 1 <= status.attempt <= max_attempts
        # HARD exactly when OK or after max_attempts problems in a row.
        assert (status.state_type is StateType.HARD) == (
            not state.is_problem or streak >= max_attempts
        )
        moved = before.pending or (before.state, before.state_type) != (
            status.state,
            status.state_type,
        )
        assert (t.change is not None) == moved
        if status.state_type is StateType.HARD:
            assert status.last_hard_state is status.state
        if t.change is not None:
            assert t.change.hard == (status.last_hard_state is not before.last_hard_state)
