"""Remediation: rules from the document act on hard problems, within guardrails, audited.

    rules (pure match) ─▶ guardrails (pure limits) ─▶ planner (pure: a Plan of decisions)
        ─▶ enforcer (the job queue, the job server, notifications) ─▶ service (the stage)

`targets` is what the stage knows of the checks, `records` the jobs as people see them
(the ``remediation`` queue of `watchkeeper.jobs`), `escalation` what people are told.
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
from watchkeeper.remediation.records import QUEUE, RemediationJob
from watchkeeper.remediation.rules import Problem, Rule, matches, parse_rules, state_name
from watchkeeper.remediation.service import (
    ActionRunner,
    RemediationJobConflict,
    RemediationJobNotFound,
    RemediationService,
    RemediationSettings,
    Silenced,
)

__all__ = [
    "DEFAULT_GLOBAL_CONCURRENCY",
    "QUEUE",
    "ActionRunner",
    "Attempt",
    "Decision",
    "Hold",
    "Problem",
    "RemediationJob",
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
