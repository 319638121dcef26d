"""Guardrails with the clock passed in: attempts, cooldown, concurrency, silence, breaker."""

from __future__ import annotations

from watchkeeper.remediation.guardrails import (
    ACT,
    Attempt,
    Hold,
    check_attempts,
    circuit_open,
    concurrency_full,
    decide,
    prune,
    stamp,
)
from watchkeeper.remediation.rules import Rule

T0 = 1_735_732_800.0  # 2025-01-01T12:00:00Z
RULE = Rule(name="restart", max_attempts=2, window=3600.0, cooldown=600.0, circuit_breaker=3)


def test_first_attempt_acts() -> None:
    assert decide(RULE, [], T0, silenced=None, targets_in_problem=1) == ACT


def test_cooldown_counts_from_the_end_of_the_last_attempt() -> None:
    attempts = [Attempt(T0, T0 + 30)]
    held = check_attempts(RULE, attempts, T0 + 100)
    assert held.hold is Hold.COOLDOWN
    assert held.reason == "cooldown until 2025-01-01T12:10:30Z"
    assert held.retry_at == T0 + 630
    assert check_attempts(RULE, attempts, T0 + 630).act


def test_max_attempts_per_window_then_the_window_slides() -> None:
    attempts = [Attempt(T0, T0 + 10), Attempt(T0 + 700, T0 + 710)]
    held = check_attempts(RULE, attempts, T0 + 2000)
    assert held.hold is Hold.MAX_ATTEMPTS
    assert held.reason.startswith("max attempts reached (2 of 2 within 3600s")
    assert held.retry_at == T0 + 3600
    assert check_attempts(RULE, attempts, T0 + 3601).act  # the first left the window


def test_a_running_attempt_holds_everything_else() -> None:
    assert check_attempts(RULE, [Attempt(T0)], T0 + 5000).hold is Hold.RUNNING


def test_silenced_wins_over_every_other_limit() -> None:
    decision = decide(
        RULE, [Attempt(T0)], T0 + 1, silenced="acknowledged by ann", targets_in_problem=99
    )
    assert (decision.hold, decision.reason) == (Hold.SILENCED, "silenced: acknowledged by ann")


def test_circuit_breaker_opens_above_the_limit_and_closes_when_the_count_drops() -> None:
    assert not circuit_open(RULE, 3)
    assert circuit_open(RULE, 4)
    held = decide(RULE, [], T0, silenced=None, targets_in_problem=4)
    assert (held.hold, held.reason) == (
        Hold.CIRCUIT_BREAKER,
        "held: circuit breaker open (4 targets)",
    )
    assert decide(RULE, [], T0, silenced=None, targets_in_problem=3).act


def test_concurrency_per_rule_then_global() -> None:
    rule = Rule(name="r", max_concurrent=2)
    assert concurrency_full(rule, 1, 5, 10) is None
    assert concurrency_full(rule, 2, 2, 10) == "rule r runs 2 of max_concurrent 2"
    assert concurrency_full(rule, 0, 10, 10) == "10 remediations run, the global limit is 10"


def test_prune_keeps_what_a_guardrail_can_still_see() -> None:
    old = Attempt(T0, T0 + 10)
    recent = Attempt(T0 + 3500, T0 + 3510)
    running = Attempt(T0 - 99999)
    assert prune([old, recent, running], RULE, T0 + 4000) == [recent, running]


def test_stamp_is_utc() -> None:
    assert stamp(T0) == "2025-01-01T12:00:00Z"
