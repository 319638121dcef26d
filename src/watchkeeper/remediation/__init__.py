"""Remediation: rules from the document act on hard problems, within guardrails, audited.

    rules (pure match) ─▶ guardrails (pure limits) ─▶ RemediationService (persist,
    dispatch through the engine runner, re-check, escalate, audit)

See docs/remediation.md for the operator's view.
"""

from __future__ import annotations

from watchkeeper.remediation.guardrails import (
    DEFAULT_GLOBAL_CONCURRENCY,
    Attempt,
    Decision,
    Hold,
    check_attempts,
    circuit_open,
    concurrency_full,
    decide,
)
from watchkeeper.remediation.rules import Problem, Rule, matches, parse_rules, state_name
from watchkeeper.remediation.service import (
    ActionRunner,
    RemediationError,
    RemediationJobConflict,
    RemediationJobNotFound,
    RemediationService,
    RemediationSettings,
    Silenced,
)

__all__ = [
    "DEFAULT_GLOBAL_CONCURRENCY",
    "ActionRunner",
    "Attempt",
    "Decision",
    "Hold",
    "Problem",
    "RemediationError",
    "RemediationJobConflict",
    "RemediationJobNotFound",
    "RemediationService",
    "RemediationSettings",
    "Rule",
    "Silenced",
    "check_attempts",
    "circuit_open",
    "concurrency_full",
    "decide",
    "matches",
    "parse_rules",
    "state_name",
]
