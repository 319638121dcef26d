"""Rules from the document's objects, and which problems they match."""

from __future__ import annotations

from typing import Any

from watchkeeper.document.normalize import CheckRecord, ObjectRecord
from watchkeeper.remediation.rules import Problem, Rule, matches, parse_rules, problem_of
from watchkeeper.results import CheckState


def obj(kind: str, spec: dict[str, Any]) -> ObjectRecord:
    return ObjectRecord(kind=kind, name=spec["name"], hash="h", spec=spec)


def record(host: str, service: str | None, labels: dict[str, str] | None = None) -> CheckRecord:
    key = host if service is None else f"{host}!{service}"
    spec = {"labels": labels or {}, "notifications": []}
    return CheckRecord(key=key, host=host, service=service, zone="core", hash="h", spec=spec)


def test_named_and_inline_actions_resolve_and_durations_become_seconds() -> None:
    rules, problems = parse_rules(
        [
            obj("remediations", {"name": "restart", "when": {"service": "http"},
                                 "action": "restart-nginx", "cooldown": "5m", "window": "2h"}),
            obj("remediations", {"name": "hook", "when": {"labels": {"role": "web"},
                                 "state": ["WARNING", "CRITICAL"], "hard": False},
                                 "action": {"kind": "http", "url": "http://127.0.0.1/x"},
                                 "confirm": True}),
        ],
        [obj("actions", {"name": "restart-nginx",
                         "action": {"kind": "command", "command": ["true"]}})],
    )  # fmt: skip
    assert problems == []
    restart, hook = rules
    assert restart.action == {"kind": "command", "command": ["true"]}
    assert restart.action_name == "restart-nginx"
    assert (restart.cooldown, restart.window, restart.max_attempts) == (300.0, 7200.0, 3)
    assert restart.states == {"CRITICAL"} and restart.hard
    assert hook.action["kind"] == "http" and hook.action_name is None
    assert hook.states == {"WARNING", "CRITICAL"} and not hook.hard and hook.confirm
    assert (hook.max_concurrent, hook.circuit_breaker) == (1, 5)


def test_a_rule_naming_a_missing_action_or_invalid_is_left_out_and_named() -> None:
    rules, problems = parse_rules(
        [
            obj("remediations", {"name": "a", "when": {}, "action": "nope"}),
            obj("remediations", {"name": "b", "when": {"state": "BROKEN"}, "action": "nope"}),
        ]
    )
    assert rules == []
    assert problems[0] == "remediation a: no action named nope"
    assert problems[1].startswith("remediation b: when.state")


def test_service_state_hardness_host_and_labels_must_all_match() -> None:
    rule = Rule(name="r", service="http", labels={"role": "web"})
    web = record("web1", "http", {"role": "web", "dc": "x"})
    hard = problem_of(web, CheckState.CRITICAL, hard=True)
    assert matches(rule, hard)
    assert not matches(rule, problem_of(web, CheckState.CRITICAL, hard=False))
    assert not matches(rule, problem_of(web, CheckState.WARNING, hard=True))
    assert not matches(rule, problem_of(record("db1", "http", {"role": "db"}),
                                        CheckState.CRITICAL, hard=True))  # fmt: skip
    assert not matches(rule, problem_of(record("web1", "ssh", {"role": "web"}),
                                        CheckState.CRITICAL, hard=True))  # fmt: skip
    assert not matches(Rule(name="r", host="web2"), hard)
    assert matches(Rule(name="soft", hard=False), problem_of(web, CheckState.CRITICAL, hard=False))


def test_host_checks_match_down_and_never_a_service_rule() -> None:
    host = record("web1", None)
    down = problem_of(host, CheckState.CRITICAL, hard=True)
    assert down.state == "DOWN" and down.trigger == "DOWN"
    assert not matches(Rule(name="default"), down)  # the default state is CRITICAL
    assert matches(Rule(name="hosts", states=frozenset({"DOWN"})), down)
    assert not matches(Rule(name="svc", service="http", states=frozenset({"DOWN"})), down)
    assert problem_of(host, CheckState.WARNING, hard=True).state == "UP"


def test_metric_rules_match_only_metric_alarms_of_their_metric() -> None:
    web = record("web1", "http")
    alarm = Problem(key=web.key, host="web1", service="http", labels={}, state="CRITICAL",
                    hard=True, metric="time")  # fmt: skip
    assert alarm.trigger == "metric:time=CRITICAL"
    assert matches(Rule(name="m", metric="time"), alarm)
    assert not matches(Rule(name="m", metric="size"), alarm)
    assert not matches(Rule(name="state"), alarm)
    assert not matches(
        Rule(name="m", metric="time"), problem_of(web, CheckState.CRITICAL, hard=True)
    )
