"""What remediation tells people: a failed, lost or expired job, a circuit breaker. Pure.

Each is a `Notification` for the rule's channels and the target check's own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from watchkeeper.document.normalize import CheckRecord
from watchkeeper.notify.notification import Notification, NotificationKind
from watchkeeper.remediation import guardrails
from watchkeeper.remediation.guardrails import Attempt, Hold
from watchkeeper.remediation.records import RemediationJob
from watchkeeper.remediation.rules import Problem, Rule

#: Targets named in a circuit breaker's message, at most.
SHOWN_TARGETS = 20


def _channels(rule: Rule | None, records: Sequence[CheckRecord | None]) -> tuple[str, ...]:
    channels: list[str] = list(rule.notifications) if rule is not None else []
    for record in records:
        if record is not None:
            channels.extend(str(c) for c in record.spec.get("notifications") or ())
    return tuple(dict.fromkeys(channels))


def job_escalation(
    job: RemediationJob,
    *,
    rule: Rule | None,
    record: CheckRecord | None,
    state: str,
    attempts: Sequence[Attempt],
    now: float,
    why: str,
) -> Notification:
    """A failure (or an outcome nobody knows) goes to people: the rule's channels and
    the check's. ``state`` is the target's state word now."""
    further = ""
    if rule is not None:
        decision = guardrails.check_attempts(rule, attempts, now)
        further = (
            "no further attempts: " + decision.reason
            if decision.hold is Hold.MAX_ATTEMPTS
            else f"a further attempt may run after the cooldown ({rule.cooldown:g}s)"
        )
    return Notification(
        kind=NotificationKind.REMEDIATION,
        key=job.target,
        host=job.host,
        service=job.service,
        state=state,
        output=f"remediation {job.rule} {job.state.value}: {why}",
        at=now,
        channels=_channels(rule, [record]),
        details={
            "rule": job.rule,
            "job_id": job.id,
            "job_state": job.state.value,
            "action_output": job.output,
            "attempts_in_window": len(attempts),
            "further": further,
        },
    )


def breaker_notice(
    rule: Rule, matched: Sequence[Problem], checks: Mapping[str, CheckRecord], now: float
) -> Notification:
    """The circuit breaker of ``rule`` opened over ``matched``: nobody is acted on."""
    count = len(matched)
    shown = [p.key for p in matched[:SHOWN_TARGETS]]
    first = matched[0]
    return Notification(
        kind=NotificationKind.REMEDIATION,
        key=f"remediation:{rule.name}",
        host=first.host,
        service=None,
        state="HELD",
        output=(
            f"remediation {rule.name} holds back: {count} targets match at once "
            f"(circuit breaker {rule.circuit_breaker}); not acting on "
            + ", ".join(shown)
            + (f" and {count - len(shown)} more" if count > len(shown) else "")
        ),
        at=now,
        channels=_channels(rule, [checks.get(p.key) for p in matched]),
        details={"rule": rule.name, "targets": shown, "count": count},
    )
