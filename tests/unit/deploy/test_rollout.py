"""The rollout decision: which host is checked or applied next, and when a rollout halts."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from watchkeeper.deploy.rollout import (
    RETRY_AFTER,
    Rollout,
    Run,
    Status,
    Target,
    after_run,
    decide,
    should_halt,
)

NOW = 1_000_000.0


def targets(*hosts: str, digest: str = "d1") -> list[Target]:
    return [
        Target(deployment="base", host=h, address=f"10.0.0.{i}", zone="dc1", digest=digest)
        for i, h in enumerate(hosts, 1)
    ]


def checked(*changes: str, ok: bool = True, at: float = NOW, digest: str = "d1") -> Status:
    return Status(digest=digest, mode="check", at=at, ok=ok, changes=tuple(changes))


def test_every_new_host_is_checked_first_within_max_concurrent() -> None:
    runs = decide(Rollout(name="base", max_concurrent=2), targets("a", "b", "c"), {}, NOW)
    assert runs == [Run("a", "check", "never checked"), Run("b", "check", "never checked")]


def test_a_check_with_changes_leads_to_an_apply_before_other_checks() -> None:
    statuses = {"a": checked("change /etc/motd", "install agent 0.1.0")}
    runs = decide(Rollout(name="base", max_concurrent=2), targets("a", "b"), statuses, NOW)
    assert runs == [
        Run("a", "apply", "change /etc/motd (+1 more)"),
        Run("b", "check", "never checked"),
    ]


def test_running_hosts_count_against_max_concurrent() -> None:
    statuses = {"a": Status(running="check"), "b": Status(running="apply")}
    assert (
        decide(Rollout(name="base", max_concurrent=2), targets("a", "b", "c"), statuses, NOW) == []
    )


def test_report_only_drift_is_never_applied_unless_an_operator_asks() -> None:
    statuses = {"a": checked("change /etc/motd")}
    report = Rollout(name="base", drift="report")
    assert decide(report, targets("a"), statuses, NOW) == []
    asked = replace(report, apply_requested=frozenset({"a"}))
    assert decide(asked, targets("a"), statuses, NOW) == [
        Run("a", "apply", "an operator asked to apply")
    ]


def test_a_changed_digest_means_a_new_check_not_an_apply_of_the_old_plan() -> None:
    statuses = {"a": checked("change /etc/motd", digest="old")}
    assert decide(Rollout(name="base"), targets("a"), statuses, NOW) == [
        Run("a", "check", "the deployment changed")
    ]


def test_in_sync_hosts_are_checked_again_every_every() -> None:
    rollout = Rollout(name="base", every=600)
    statuses = {"a": checked(at=NOW - 599)}
    assert decide(rollout, targets("a"), statuses, NOW) == []
    statuses = {"a": checked(at=NOW - 600)}
    assert decide(rollout, targets("a"), statuses, NOW) == [Run("a", "check", "drift check")]


def test_an_apply_is_verified_by_a_check_at_once() -> None:
    statuses = {"a": Status(digest="d1", mode="apply", at=NOW, ok=True, changes=("x",), streak=1)}
    assert decide(Rollout(name="base"), targets("a"), statuses, NOW) == [
        Run("a", "check", "verify the apply")
    ]


def test_an_apply_that_did_not_converge_is_not_repeated_before_every() -> None:
    """A guard that never becomes true would otherwise apply forever."""
    rollout = Rollout(name="base", every=600)
    stuck = replace(checked("run 'make'"), streak=1)
    assert decide(rollout, targets("a"), {"a": stuck}, NOW + 1) == []
    assert decide(rollout, targets("a"), {"a": stuck}, NOW + 600)[0].mode == "apply"


def test_failures_are_retried_soon_and_halt_past_max_failures() -> None:
    rollout = Rollout(name="base", max_failures=1, max_concurrent=5)
    hosts = targets("a", "b", "c")
    one = {"a": checked(ok=False), "c": checked("change /etc/motd")}
    assert not should_halt(rollout, hosts, one)
    assert [r.host for r in decide(rollout, hosts, one, NOW)] == ["c", "b"]
    assert decide(rollout, hosts, one, NOW + RETRY_AFTER) == [
        Run("c", "apply", "change /etc/motd"),
        Run("a", "check", "retry after a failure"),
        Run("b", "check", "never checked"),
    ]
    two = {**one, "b": checked(ok=False)}
    assert should_halt(rollout, hosts, two)
    # Halted: nothing is applied, but checks (plans) go on.
    assert all(r.mode == "check" for r in decide(rollout, hosts, two, NOW + RETRY_AFTER))


def test_a_halt_is_sticky_and_one_off_requests_are_consumed() -> None:
    rollout = Rollout(name="base", max_failures=0, check_requested=frozenset({"a", "b"}))
    hosts = targets("a", "b")
    failed = {"a": checked(ok=False)}
    halted = after_run(rollout, hosts, failed, "a")
    assert halted.halted
    assert halted.check_requested == frozenset({"b"})
    # A later success of the failed host does not lift the halt: an operator does.
    assert after_run(halted, hosts, {"a": checked()}, "a").halted


def test_status_round_trips_through_json() -> None:
    status = Status(
        digest="d", mode="apply", at=12.5, ok=False, changes=("a", "b"), error="boom",
        error_kind="host-key", agent_version="0.1.0", agent_key="ssh-ed25519 AAAA", streak=2,
    )  # fmt: skip
    assert Status.from_json(status.to_json()) == status
    assert Status.from_json({}) == Status()


@given(
    st.lists(
        st.sampled_from(["new", "sync", "changes", "failed", "running"]), min_size=1, max_size=12
    ),
    st.integers(min_value=1, max_value=5),
    st.integers(min_value=0, max_value=3),
)
def test_never_more_in_flight_than_max_concurrent_and_no_apply_once_halted(
    kinds: list[str], max_concurrent: int, max_failures: int
) -> None:
    hosts = targets(*(f"h{i}" for i in range(len(kinds))))
    by_kind = {
        "new": Status(),
        "sync": checked(at=NOW),
        "changes": checked("change /etc/motd"),
        "failed": checked(ok=False),
        "running": Status(running="check"),
    }
    statuses = {t.host: by_kind[k] for t, k in zip(hosts, kinds, strict=True)}
    rollout = Rollout(name="base", max_concurrent=max_concurrent, max_failures=max_failures)
    runs = decide(rollout, hosts, statuses, NOW)
    assert kinds.count("running") + len(runs) <= max(max_concurrent, kinds.count("running"))
    assert len({r.host for r in runs}) == len(runs)
    assert all(statuses[r.host].running is None for r in runs)
    if kinds.count("failed") > max_failures:
        assert all(r.mode == "check" for r in runs)
    else:
        assert {r.host for r in runs if r.mode == "apply"} <= {
            t.host for t, k in zip(hosts, kinds, strict=True) if k == "changes"
        }
