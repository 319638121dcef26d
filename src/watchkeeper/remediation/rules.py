"""Remediation rules from the document, and whether a target's problem matches one. Pure.

A rule's ``when`` names what it acts on; every field given must match:

- ``host``, ``service``: the check's host and service (a host's own check has no service,
  so a rule naming a service never matches it);
- ``labels``: each label must be on the check (host labels merged with service labels);
- ``state``: one state or a list; services are OK/WARNING/CRITICAL/UNKNOWN, a host's own
  check is DOWN when its check fails (``UNREACHABLE`` never matches: an unreachable host's
  problem belongs to its parents);
- ``hard``: true (the default) acts on hard states only;
- ``metric``: the rule acts on metric alarms of that metric instead of on states.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from pydantic import ValidationError

from watchkeeper.document import models
from watchkeeper.document.normalize import CheckRecord, ObjectRecord
from watchkeeper.results import CheckState

M = TypeVar("M", models.Action, models.Remediation)


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """A remediation rule with its action resolved; durations in seconds."""

    name: str
    host: str | None = None
    service: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    states: frozenset[str] = frozenset({"CRITICAL"})
    hard: bool = True
    metric: str | None = None
    #: The action spec as JSON (``{"kind": "ssh", "command": [...], ...}``).
    action: dict[str, Any] = field(default_factory=dict)
    #: The name of the document action it came from; None for an inline action.
    action_name: str | None = None
    max_attempts: int = 3
    window: float = 3600.0
    cooldown: float = 600.0
    notifications: tuple[str, ...] = ()
    max_concurrent: int = 1
    circuit_breaker: int = 5
    confirm: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """What a target is now, in the words rules match on."""

    key: str
    host: str
    service: str | None
    labels: Mapping[str, str]
    #: CRITICAL, WARNING, UNKNOWN for services; DOWN for a failing host check; OK/UP.
    state: str
    hard: bool
    #: Set for a metric alarm: the metric in alarm.
    metric: str | None = None

    @property
    def trigger(self) -> str:
        """How the job records what matched: ``CRITICAL``, ``DOWN`` or ``metric:load``."""
        return self.state if self.metric is None else f"metric:{self.metric}={self.state}"


def state_name(record: CheckRecord, state: CheckState) -> str:
    """The state word a rule matches: a host's own check that fails is DOWN, not CRITICAL."""
    if record.service is None:
        return "UP" if state in (CheckState.OK, CheckState.WARNING) else "DOWN"
    return state.name


def problem_of(
    record: CheckRecord, state: CheckState, *, hard: bool, metric: str | None = None
) -> Problem:
    name = state_name(record, state) if metric is None else state.name
    return problem_named(record, name, hard=hard, metric=metric)


def problem_named(
    record: CheckRecord, state: str, *, hard: bool, metric: str | None = None
) -> Problem:
    """A check's problem under the state name rules match (``CRITICAL``, ``DOWN``...)."""
    labels = record.spec.get("labels")
    return Problem(
        key=record.key,
        host=record.host,
        service=record.service,
        labels=labels if isinstance(labels, dict) else {},
        state=state,
        hard=hard,
        metric=metric,
    )


def matches(rule: Rule, problem: Problem) -> bool:
    """Whether ``rule`` acts on ``problem``; every condition the rule gives must hold."""
    if (rule.metric is None) != (problem.metric is None) or rule.metric != problem.metric:
        return False
    if rule.hard and not problem.hard:
        return False
    if problem.state not in rule.states:
        return False
    if rule.host is not None and rule.host != problem.host:
        return False
    if rule.service is not None and rule.service != problem.service:
        return False
    return all(problem.labels.get(k) == v for k, v in rule.labels.items())


def parse_rules(
    remediations: Iterable[ObjectRecord | models.Remediation],
    actions: Iterable[ObjectRecord | models.Action] = (),
) -> tuple[list[Rule], list[str]]:
    """Rules from the running configuration's objects; and why any were left out.

    The document was validated at import, so problems here mean version skew (an object
    stored by an older release); the rule is skipped and named rather than crashing.
    """
    problems: list[str] = []
    named: dict[str, dict[str, Any]] = {}
    for item in actions:
        try:
            action = _model(models.Action, item)
        except ValidationError as exc:
            problems.append(f"action {_name(item)}: {_first_error(exc)}")
            continue
        named[action.name] = action.action.model_dump(mode="json", exclude_none=True)
    rules: list[Rule] = []
    for entry in remediations:
        try:
            remediation = _model(models.Remediation, entry)
        except ValidationError as exc:
            problems.append(f"remediation {_name(entry)}: {_first_error(exc)}")
            continue
        if isinstance(remediation.action, str):
            spec = named.get(remediation.action)
            if spec is None:
                problems.append(
                    f"remediation {remediation.name}: no action named {remediation.action}"
                )
                continue
            action_name: str | None = remediation.action
        else:
            spec = remediation.action.model_dump(mode="json", exclude_none=True)
            action_name = None
        rules.append(_rule(remediation, spec, action_name))
    return rules, problems


def _rule(r: models.Remediation, action: dict[str, Any], action_name: str | None) -> Rule:
    when = r.when
    states = when.state if isinstance(when.state, list) else [when.state]
    return Rule(
        name=r.name,
        host=when.host,
        service=when.service,
        labels=dict(when.labels or {}),
        states=frozenset(states),
        hard=when.hard,
        metric=when.metric,
        action=action,
        action_name=action_name,
        max_attempts=r.max_attempts,
        window=r.window.total_seconds(),
        cooldown=r.cooldown.total_seconds(),
        notifications=tuple(r.notifications),
        max_concurrent=r.max_concurrent,
        circuit_breaker=r.circuit_breaker,
        confirm=r.confirm,
    )


def _model(model: type[M], item: ObjectRecord | M) -> M:
    if isinstance(item, model):
        return item
    assert isinstance(item, ObjectRecord)
    # The stored spec is JSON: validate it as JSON, as the document itself was.
    return model.model_validate_json(orjson.dumps(item.spec))


def _name(item: object) -> str:
    return str(getattr(item, "name", "?"))


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"])
    return f"{where}: {error['msg']}" if where else error["msg"]
