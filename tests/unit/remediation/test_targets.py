"""What remediation knows of the targets: the problems, kept per change, at any size."""

from __future__ import annotations

import pytest

from tests.unit.remediation.test_service import T0, record, status
from watchkeeper.engine import HostState, HostStatus
from watchkeeper.engine.observed import Observed
from watchkeeper.remediation import planner, targets
from watchkeeper.remediation.targets import Targets
from watchkeeper.results import CheckState


def loaded(hosts: int) -> Targets:
    """``hosts`` hosts with a host check and an http check each, every check CRITICAL."""
    checks = {}
    for i in range(hosts):
        for r in (record(f"h{i}", None), record(f"h{i}")):
            checks[r.key] = r
    found = Targets()
    found.observe(
        Observed(
            checks=checks,
            statuses=tuple(status(key, CheckState.CRITICAL) for key in checks),
        )
    )
    return found


def words(found: Targets) -> dict[str, str]:
    return {p.key: p.state for p in found.problems()}


def test_problems_follow_each_change() -> None:
    found = loaded(2)
    assert words(found) == {
        "h0": "DOWN", "h0!http": "CRITICAL", "h1": "DOWN", "h1!http": "CRITICAL",
    }  # fmt: skip
    found.observe(
        Observed(
            statuses=(
                status("h0!http", CheckState.OK),
                status("h1!http", CheckState.CRITICAL, host_problem=True),
            ),
            hosts=(
                HostStatus(
                    host="h1",
                    state=HostState.UNREACHABLE,
                    last_state_change=T0,
                    last_hard_change=T0,
                ),
            ),
        )
    )
    # Recovered: gone; the host's problem: left to the host's rules; unreachable: named so.
    assert words(found) == {"h0": "DOWN", "h1": "UNREACHABLE"}
    found.observe(
        Observed(hosts=(HostStatus(host="h1", last_state_change=T0, last_hard_change=T0),))
    )
    assert words(found) == {"h0": "DOWN", "h1": "DOWN"}
    found.observe(Observed(removed=("h0",)))
    assert words(found) == {"h1": "DOWN"}
    # A new configuration: the problems of checks that stay are kept, with their new records.
    checks = {"h1": record("h1", None, labels={"role": "db"})}
    found.observe(Observed(checks=checks))
    [problem] = found.problems()
    assert (problem.key, problem.labels) == ("h1", {"role": "db"})


def test_soft_and_pending_statuses() -> None:
    found = loaded(1)
    found.observe(Observed(statuses=(status("h0!http", CheckState.WARNING, hard=False),)))
    problem = {p.key: p for p in found.problems()}["h0!http"]
    assert (problem.state, problem.hard) == ("WARNING", False)
    pending = status("h0", CheckState.CRITICAL)
    object.__setattr__(pending, "pending", True)
    found.observe(Observed(statuses=(pending,)))
    assert "h0" not in words(found)


@pytest.mark.parametrize("hosts", [50, 5000])
def test_the_work_per_result_does_not_grow_with_the_checks(
    hosts: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """100 and 10,000 checks: a result builds at most one problem, whatever the count."""
    found = loaded(hosts)
    built = 0
    real = targets.problem_named

    def counting(*args: object, **kwargs: object) -> object:
        nonlocal built
        built += 1
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(targets, "problem_named", counting)
    results = 200
    now = {key: CheckState.CRITICAL for key in found.statuses}
    for n in range(results):
        key = f"h{n % hosts}!http"
        flip = CheckState.WARNING if now[key] is CheckState.CRITICAL else CheckState.CRITICAL
        now[key] = flip
        found.observe(Observed(statuses=(status(key, flip),)))
    assert built == results  # one each: the state word changed every time
    same = status("h0!http", now["h0!http"])
    found.observe(Observed(statuses=(same,)))
    found.observe(Observed(statuses=(same,)))
    assert built == results  # the same problem again is not built again


def test_with_no_rules_the_plan_asks_for_no_problems(monkeypatch: pytest.MonkeyPatch) -> None:
    found = loaded(3)

    def refuse(self: Targets) -> None:
        raise AssertionError("problems() asked with no rule to match them")

    monkeypatch.setattr(Targets, "problems", refuse)
    memory = planner.Memory(
        rules={}, targets=found, live={}, attempts={}, episodes={}, closed=set(), breakers={},
        platforms={}, silenced=lambda key, now: None,
    )  # fmt: skip
    assert planner.plan_matches(memory, T0).decisions == ()
