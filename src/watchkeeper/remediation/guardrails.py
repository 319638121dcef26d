"""Guardrails: whether a remediation may act on a target now, and if not, why. Pure.

Checked in this order, the first that holds wins (and is what the audit says):

1. silenced: the target is acknowledged, in downtime or flapping (the alarm book says);
2. circuit breaker: more than ``circuit_breaker`` targets of the rule are in a matching
   problem at once; a wide outage is not fixed by restarting everything;
3. running: an attempt of this rule on this target has not finished;
4. max attempts: ``max_attempts`` attempts started within the last ``window``;
5. cooldown: less than ``cooldown`` since the last attempt ended (or started, while it
   had no end).

Concurrency (per rule ``max_concurrent``, and a global limit) is not a refusal: a job over
the limit stays queued until a slot frees (`concurrency_full`).

All times are epoch seconds, passed in; nothing here reads a clock.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from watchkeeper.remediation.rules import Rule

#: Remediation actions running at once over all rules, unless the settings say otherwise.
DEFAULT_GLOBAL_CONCURRENCY = 10


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt of a rule on a target: when it started and, once over, when it ended."""

    started: float
    ended: float | None = None


class Hold(enum.Enum):
    """Why a guardrail refused; the value is the word the audit's event uses."""

    SILENCED = "silenced"
    CIRCUIT_BREAKER = "held"
    RUNNING = "running"
    MAX_ATTEMPTS = "max_attempts"
    COOLDOWN = "cooldown"


@dataclass(frozen=True, slots=True)
class Decision:
    """Act, or not and why; ``retry_at`` is when the refusal lapses by itself, if it does."""

    hold: Hold | None = None
    reason: str = ""
    retry_at: float | None = None

    @property
    def act(self) -> bool:
        return self.hold is None


ACT = Decision()


def stamp(epoch: float) -> str:
    """``2025-01-01T12:10:00Z``: times as the audit shows them."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def in_window(attempts: Sequence[Attempt], window: float, now: float) -> list[Attempt]:
    """The attempts that started within the last ``window`` seconds."""
    return [a for a in attempts if a.started > now - window]


def check_attempts(rule: Rule, attempts: Sequence[Attempt], now: float) -> Decision:
    """Running, max attempts per window, cooldown: the per-target limits."""
    if any(a.ended is None for a in attempts):
        return Decision(Hold.RUNNING, "an attempt is still running")
    recent = in_window(attempts, rule.window, now)
    if len(recent) >= rule.max_attempts:
        oldest = min(a.started for a in recent)
        return Decision(
            Hold.MAX_ATTEMPTS,
            f"max attempts reached ({len(recent)} of {rule.max_attempts} within "
            f"{rule.window:g}s; next allowed at {stamp(oldest + rule.window)})",
            oldest + rule.window,
        )
    if attempts and rule.cooldown > 0:
        last = max(a.ended if a.ended is not None else a.started for a in attempts)
        until = last + rule.cooldown
        if now < until:
            return Decision(Hold.COOLDOWN, f"cooldown until {stamp(until)}", until)
    return ACT


def circuit_open(rule: Rule, targets_in_problem: int) -> bool:
    """The breaker trips when more targets than ``circuit_breaker`` match at once."""
    return targets_in_problem > rule.circuit_breaker


def decide(
    rule: Rule,
    attempts: Sequence[Attempt],
    now: float,
    *,
    silenced: str | None,
    targets_in_problem: int,
) -> Decision:
    """Whether ``rule`` may start an attempt on a target now; the first refusal wins."""
    if silenced:
        return Decision(Hold.SILENCED, f"silenced: {silenced}")
    if circuit_open(rule, targets_in_problem):
        return Decision(
            Hold.CIRCUIT_BREAKER, f"held: circuit breaker open ({targets_in_problem} targets)"
        )
    return check_attempts(rule, attempts, now)


def concurrency_full(
    rule: Rule, running_for_rule: int, running_total: int, global_limit: int
) -> str | None:
    """Why a queued job must wait for a slot, or None when it may go now."""
    if running_for_rule >= rule.max_concurrent:
        return f"rule {rule.name} runs {running_for_rule} of max_concurrent {rule.max_concurrent}"
    if running_total >= global_limit:
        return f"{running_total} remediations run, the global limit is {global_limit}"
    return None


def prune(attempts: Sequence[Attempt], rule: Rule, now: float) -> list[Attempt]:
    """Drop attempts that no guardrail can look at any more (out of window and cooldown)."""
    keep_after = now - max(rule.window, rule.cooldown)
    return [
        a
        for a in attempts
        if a.ended is None or a.started > now - rule.window or a.ended > keep_after
    ]
