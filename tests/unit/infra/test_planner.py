"""The infrastructure planner, case by case: desired against observed gives a plan."""

from __future__ import annotations

from typing import Any

import pytest

from watchkeeper.infra.desired import Desired
from watchkeeper.infra.planner import (
    Action,
    Knowledge,
    Observation,
    Op,
    Plan,
    PlanInput,
    plan,
)
from watchkeeper.infra.providers.base import Machine

OWNER = "cluster-1"
PLATFORM = "aws"


def resource(name: str = "web", count: int = 3, **spec: Any) -> dict[str, Any]:
    return {"name": name, "platform": PLATFORM, "count": count, **spec}


def machine(
    slot: str,
    *,
    resource: str | None = None,
    owner: str = OWNER,
    state: str = "running",
    cloud_id: str | None = None,
    **fields: Any,
) -> Machine:
    """A machine filling ``slot``; its resource is the slot's prefix unless given."""
    return Machine(
        cloud_id=cloud_id or f"i-{slot}",
        resource=resource if resource is not None else slot.rsplit("-", 1)[0],
        slot=slot,
        owner=owner,
        state=state,
        **fields,
    )


def running(name: str, count: int, **fields: Any) -> list[Machine]:
    return [machine(f"{name}-{i}", **fields) for i in range(count)]


def given(
    resources: list[dict[str, Any]],
    machines: list[Machine] | tuple[Machine, ...] = (),
    *,
    error: str = "",
    limits: dict[str, int] | None = None,
    **options: Any,
) -> PlanInput:
    platform: dict[str, Any] = {"name": PLATFORM, "provider": "ec2", "zone": "eu"}
    if limits is not None:
        platform["limits"] = limits
    desired = Desired.from_specs(platforms=[platform], resources=resources)
    return PlanInput(
        desired=desired,
        platform=desired.platforms[PLATFORM],
        observation=Observation(platform=PLATFORM, machines=tuple(machines), error=error),
        owner=OWNER,
        **options,
    )


def run(
    resources: list[dict[str, Any]],
    machines: list[Machine] | tuple[Machine, ...] = (),
    **options: Any,
) -> Plan:
    return plan(given(resources, machines, **options))


def ops(result: Plan) -> list[tuple[Op, str, str | None]]:
    return [(a.op, a.slot, a.cloud_id) for a in result.actions]


def report(result: Plan, name: str = "web") -> tuple[int, int, tuple[str, ...]]:
    [found] = [r for r in result.reports if r.resource == name]
    return found.desired, found.converged, found.drift


# --- creating and converging ----------------------------------------------------------


def test_an_empty_platform_gets_one_create_per_slot_each_with_its_reason() -> None:
    result = run([resource(count=3, size="t3.small")])
    assert result.knowledge is Knowledge.KNOWN
    assert ops(result) == [(Op.CREATE, f"web-{i}", None) for i in range(3)]
    assert [a.reason for a in result.actions] == [
        "+web-0: count 3, observed 0",
        "+web-1: count 3, observed 0",
        "+web-2: count 3, observed 0",
    ]
    assert {(a.resource, a.platform, a.size, a.confirm) for a in result.actions} == {
        ("web", PLATFORM, "t3.small", False)
    }
    assert result.refusals == ()
    assert report(result) == (3, 0, ())
    assert result.summary() == "create 3"


def test_a_create_waits_for_an_operator_when_confirm_names_it() -> None:
    result = run([resource(count=1, confirm=["create"])])
    assert [(a.op, a.confirm) for a in result.actions] == [(Op.CREATE, True)]


def test_the_observed_count_in_a_reason_counts_the_filled_slots() -> None:
    result = run([resource(count=3)], [machine("web-1")])
    assert [a.reason for a in result.actions] == [
        "+web-0: count 3, observed 1",
        "+web-2: count 3, observed 1",
    ]


def test_three_running_owned_machines_are_converged_and_nothing_is_planned() -> None:
    result = run([resource(count=3, size="t3.small")], running("web", 3, size="t3.small"))
    assert result.knowledge is Knowledge.KNOWN
    assert result.actions == ()
    assert result.refusals == ()
    assert report(result) == (3, 3, ())
    assert result.summary() == "no changes"


def test_a_machine_that_reports_no_size_or_image_matches_any() -> None:
    result = run([resource(count=1, size="t3.small", image="ami-1")], [machine("web-0")])
    assert result.actions == ()
    assert report(result) == (1, 1, ())


# --- lookalikes -----------------------------------------------------------------------


@pytest.mark.parametrize("owner", ["cluster-2", ""])
def test_a_foreign_machine_is_never_acted_on_and_is_reported_as_a_lookalike(owner: str) -> None:
    foreign = [
        machine("web-0", owner=owner, state="stopped", size="wrong"),  # would be started
        machine("web-7", owner=owner),  # an extra slot: would be destroyed
        machine("gone-0", owner=owner),  # a resource not in the document
    ]
    result = run([resource(count=1, size="right", protect=True)], [machine("web-0"), *foreign])
    assert ops(result) == [(Op.PROTECT, "web-0", "i-web-0")]  # only the owned one
    assert result.lookalikes == tuple(foreign)
    assert all(r.cloud_id not in {m.cloud_id for m in foreign} for r in result.refusals)


def test_an_owned_machine_is_not_a_lookalike() -> None:
    result = run([resource(count=1)], [machine("web-0")])
    assert result.lookalikes == ()


# --- scaling down ---------------------------------------------------------------------


def test_scaling_down_destroys_the_highest_slot_by_cloud_id_and_waits_for_confirm() -> None:
    machines = [machine(f"web-{i}", cloud_id=f"i-{i:04x}") for i in range(3)]
    result = run([resource(count=2)], machines)
    assert ops(result) == [(Op.DESTROY, "web-2", "i-0002")]
    [destroy] = result.actions
    assert destroy.confirm is True  # confirm defaults to ["destroy"]
    assert destroy.reason == "-web-2: count 2"
    assert destroy.resource == "web"
    assert report(result) == (2, 2, ())


def test_a_destroy_does_not_wait_when_confirm_is_empty() -> None:
    result = run([resource(count=2, confirm=[])], running("web", 3))
    assert [(a.op, a.slot, a.confirm) for a in result.actions] == [(Op.DESTROY, "web-2", False)]


def test_scale_down_takes_the_highest_slot_first_numerically() -> None:
    machines = [machine(f"web-{i}") for i in (0, 2, 10, 9, 1)]
    result = run([resource(count=1)], machines, limits={"max_destroy": 10})
    assert [a.slot for a in result.actions] == ["web-10", "web-9", "web-2", "web-1"]


# --- protection -----------------------------------------------------------------------


@pytest.mark.parametrize("how", ["flag", "store"])
def test_a_protected_machine_is_refused_not_destroyed(how: str) -> None:
    machines = running("web", 2)
    machines.append(machine("web-2", protected=how == "flag"))
    store = frozenset({"i-web-2"}) if how == "store" else frozenset()
    result = run([resource(count=2)], machines, protected=store)
    assert result.actions == ()
    [refusal] = result.refusals
    assert (refusal.slot, refusal.cloud_id, refusal.resource) == ("web-2", "i-web-2", "web")
    assert "protected" in refusal.reason
    assert "unprotect" in refusal.reason


def test_a_protected_machine_of_a_removed_resource_is_refused_too() -> None:
    result = run([], [machine("old-0", protected=True)])
    assert result.actions == ()
    [refusal] = result.refusals
    assert "protected" in refusal.reason and refusal.resource == "old"


def test_a_protected_extra_is_skipped_and_the_next_highest_slot_destroyed() -> None:
    machines = [*running("web", 2), machine("web-2", protected=True), machine("web-3")]
    result = run([resource(count=1)], machines, limits={"max_destroy": 5})
    assert ops(result) == [(Op.DESTROY, "web-3", "i-web-3"), (Op.DESTROY, "web-1", "i-web-1")]
    assert [r.slot for r in result.refusals] == ["web-2"]


def test_no_plan_unprotects_even_when_the_document_dropped_protect() -> None:
    machines = [machine("web-0", protected=True), machine("web-1", protected=True)]
    result = run([resource(count=2, protect=False)], machines, protected=frozenset({"i-web-1"}))
    assert result.actions == ()
    assert report(result) == (2, 2, ())


def test_protection_recorded_in_the_store_is_put_back_when_the_platform_lost_it() -> None:
    # The document dropped `protect`, but the store recorded it: it outlives the document.
    machines = [machine("web-0"), machine("web-1")]
    result = run([resource(count=2, protect=False)], machines, protected=frozenset({"i-web-1"}))
    assert ops(result) == [(Op.PROTECT, "web-1", "i-web-1")]
    assert report(result)[2] == ("web-1: protection lost out of band",)


def test_protect_true_protects_each_unprotected_machine_of_the_resource() -> None:
    machines = [machine("web-0"), machine("web-1", protected=True), machine("web-2")]
    result = run([resource(count=3, protect=True)], machines)
    assert ops(result) == [(Op.PROTECT, "web-0", "i-web-0"), (Op.PROTECT, "web-2", "i-web-2")]
    assert result.actions[0].reason == "protect web-0: the document asks for it"
    assert report(result)[1] == 1  # neither is converged until it is protected


def test_protect_is_not_limited_to_one_slot_at_a_time() -> None:
    result = run([resource(count=3, protect=True)], running("web", 3))
    assert [a.op for a in result.actions] == [Op.PROTECT] * 3


# --- limits ---------------------------------------------------------------------------


def test_max_destroy_caps_one_apply_and_refuses_the_rest() -> None:
    result = run([resource(count=1)], running("web", 5), limits={"max_destroy": 1})
    assert ops(result) == [(Op.DESTROY, "web-4", "i-web-4")]
    assert [r.slot for r in result.refusals] == ["web-3", "web-2", "web-1"]
    assert all("max_destroy=1" in r.reason for r in result.refusals)
    assert result.summary() == "destroy 1, refused 3"


def test_max_create_caps_one_apply_and_refuses_the_rest() -> None:
    result = run([resource(count=5)], limits={"max_create": 2})
    assert ops(result) == [(Op.CREATE, "web-0", None), (Op.CREATE, "web-1", None)]
    assert [r.slot for r in result.refusals] == ["web-2", "web-3", "web-4"]
    assert all("max_create=2" in r.reason for r in result.refusals)


def test_max_create_counts_across_the_resources_of_a_platform() -> None:
    result = run([resource("web", 2), resource("db", 2)], limits={"max_create": 3})
    assert [a.slot for a in result.actions] == ["web-0", "web-1", "db-0"]
    assert [r.slot for r in result.refusals] == ["db-1"]


# --- knowledge ------------------------------------------------------------------------


def test_a_failed_observation_is_unknown_and_plans_nothing() -> None:
    lookalike = machine("web-0", owner="")
    result = run([resource(count=3)], [machine("web-5"), lookalike], error="throttled", known=2)
    assert result.knowledge is Knowledge.UNKNOWN
    assert result.actions == () and result.refusals == ()
    assert result.reason == "observation failed: throttled"
    [rep] = result.reports
    assert (rep.desired, rep.converged, rep.unknown) == (3, 0, result.reason)
    assert result.lookalikes == (lookalike,)


def test_seeing_nothing_where_machines_were_known_is_unknown() -> None:
    result = run([resource(count=3)], known=3)
    assert result.knowledge is Knowledge.UNKNOWN
    assert result.actions == ()
    assert "observed 0 of 3" in result.reason
    assert "watchkeeper infra accept aws" in result.reason
    assert result.reports[0].unknown == result.reason


def test_seeing_nothing_where_nothing_was_known_is_an_empty_platform() -> None:
    result = run([resource(count=3)], known=0)
    assert result.knowledge is Knowledge.KNOWN
    assert result.reason == ""
    assert [a.op for a in result.actions] == [Op.CREATE] * 3


# --- drift ----------------------------------------------------------------------------


def test_a_stopped_machine_is_started_and_reported_as_drift() -> None:
    result = run([resource(count=2)], [machine("web-0"), machine("web-1", state="stopped")])
    assert ops(result) == [(Op.START, "web-1", "i-web-1")]
    assert result.actions[0].reason == "start web-1: stopped out of band"
    assert report(result) == (2, 1, ("web-1 stopped out of band",))


def test_drift_report_only_reports_a_stopped_machine() -> None:
    machines = [machine("web-0"), machine("web-1", state="stopped")]
    result = run([resource(count=2, drift="report")], machines)
    assert result.actions == ()
    assert report(result) == (2, 1, ("web-1 stopped out of band",))


def test_a_stopping_machine_is_drift_but_not_started() -> None:
    result = run([resource(count=1)], [machine("web-0", state="stopping")])
    assert result.actions == ()
    assert report(result) == (1, 0, ("web-0 stopping out of band",))


def test_size_drift_in_place_resizes_one_slot_per_resource_at_a_time() -> None:
    result = run([resource(count=3, size="large")], running("web", 3, size="small"))
    assert ops(result) == [(Op.RESIZE, "web-0", "i-web-0")]
    [resize] = result.actions
    assert resize.size == "large"
    assert resize.confirm is False
    assert resize.reason == "resize web-0: size small, want large (stop, resize, start)"
    desired, converged, drift = report(result)
    assert (desired, converged) == (3, 0)
    assert drift == tuple(f"web-{i}: size small, want large" for i in range(3))


def test_a_resize_waits_for_an_operator_when_confirm_names_it() -> None:
    result = run([resource(count=1, size="large", confirm=["resize"])], [machine("web-0")])
    assert result.actions == ()  # no size reported: nothing to resize
    result = run(
        [resource(count=1, size="large", confirm=["resize"])], [machine("web-0", size="small")]
    )
    assert [(a.op, a.confirm) for a in result.actions] == [(Op.RESIZE, True)]


@pytest.mark.parametrize("busy", ["web-0", "web-2"])
def test_no_update_while_any_slot_of_the_resource_is_busy(busy: str) -> None:
    result = run(
        [resource(count=3, size="large")], running("web", 3, size="small"), busy=frozenset({busy})
    )
    assert result.actions == ()
    assert len(report(result)[2]) == 3  # still reported


def test_an_image_cannot_change_in_place_so_it_is_refused() -> None:
    result = run([resource(count=1, image="ami-2")], [machine("web-0", image="ami-1")])
    assert result.actions == ()
    [refusal] = result.refusals
    assert "in-place cannot change an image" in refusal.reason
    assert report(result)[2] == ("web-0: image ami-1, want ami-2",)


def test_size_drift_with_update_replace_destroys_the_machine() -> None:
    result = run(
        [resource(count=2, size="large", update="replace")], running("web", 2, size="small")
    )
    assert ops(result) == [(Op.DESTROY, "web-0", "i-web-0")]
    [destroy] = result.actions
    assert destroy.confirm is True
    assert destroy.reason == "replace web-0: size small, want large (destroy, then create)"


def test_replace_of_a_protected_machine_is_refused() -> None:
    result = run(
        [resource(count=1, size="large", update="replace")],
        [machine("web-0", size="small", protected=True)],
    )
    assert result.actions == ()
    assert "protected" in result.refusals[0].reason


def test_size_drift_with_create_before_destroy_creates_a_second_machine_for_the_slot() -> None:
    result = run(
        [resource(count=2, size="large", update="create-before-destroy")],
        running("web", 2, size="small"),
    )
    assert ops(result) == [(Op.CREATE, "web-0", None)]
    [create] = result.actions
    assert create.size == "large"
    assert create.confirm is False
    assert "create before destroy" in create.reason


def test_after_create_before_destroy_the_old_machine_goes_and_the_new_one_stays() -> None:
    new = machine("web-0", cloud_id="i-new", size="large", created_at=200.0)
    old = machine("web-0", cloud_id="i-old", size="small", created_at=100.0)
    result = run([resource(count=1, size="large", update="create-before-destroy")], [new, old])
    assert ops(result) == [(Op.DESTROY, "web-0", "i-old")]
    assert result.actions[0].reason == "-web-0 (i-old): web-0 is already filled by i-new"
    assert report(result) == (1, 0, ())  # converged once the old one is gone


def test_a_surplus_destroy_holds_the_next_slots_update() -> None:
    machines = [
        machine("web-0", cloud_id="i-old", size="small", created_at=1.0),
        machine("web-0", cloud_id="i-new", size="large", created_at=2.0),
        machine("web-1", size="small"),
    ]
    result = run([resource(count=2, size="large", update="create-before-destroy")], machines)
    assert ops(result) == [(Op.DESTROY, "web-0", "i-old")]


# --- busy slots and --only ------------------------------------------------------------


def test_a_busy_slot_gets_no_action() -> None:
    result = run([resource(count=3)], busy=frozenset({"web-1"}))
    assert [a.slot for a in result.actions] == ["web-0", "web-2"]
    assert result.refusals == ()


def test_a_busy_slot_is_neither_started_nor_protected_nor_destroyed() -> None:
    machines = [machine("web-0", state="stopped"), machine("web-1")]
    result = run([resource(count=1, protect=True)], machines, busy=frozenset({"web-0", "web-1"}))
    assert result.actions == ()
    assert result.refusals == ()


def test_only_plans_the_named_resources() -> None:
    machines = [machine("web-0", state="stopped"), machine("web-5"), machine("old-0")]
    result = run(
        [resource("web", 2, protect=True), resource("db", 1)], machines, only=frozenset({"db"})
    )
    assert ops(result) == [(Op.CREATE, "db-0", None)]
    assert report(result, "web")[2] == ("web-0 stopped out of band",)  # still reported


# --- machines the document does not want ----------------------------------------------


def test_an_owned_machine_of_a_removed_resource_is_destroyed_with_confirm() -> None:
    machines = [machine("old-1"), machine("old-0")]
    result = run([resource("web", 0, confirm=[])], machines)
    assert ops(result) == [(Op.DESTROY, "old-1", "i-old-1"), (Op.DESTROY, "old-0", "i-old-0")]
    assert all(a.confirm for a in result.actions)  # not web's empty confirm list
    assert all(a.resource == "old" for a in result.actions)
    assert result.actions[0].reason == "-old-1: resource old is no longer in the document"


def test_a_removed_resource_is_left_alone_when_only_does_not_name_it() -> None:
    result = run(
        [resource("web", 1)], [machine("web-0"), machine("old-0")], only=frozenset({"web"})
    )
    assert result.actions == ()


def test_a_terminated_machine_fills_no_slot() -> None:
    result = run([resource(count=1)], [machine("web-0", state="terminated")], known=1)
    assert ops(result) == [(Op.CREATE, "web-0", None)]


def test_a_machine_terminated_out_of_band_is_recreated_and_reported() -> None:
    machines = [machine("web-0"), machine("web-1", state="terminated")]
    result = run([resource(count=2)], machines, known=2)
    assert ops(result) == [(Op.CREATE, "web-1", None)]
    assert report(result) == (2, 1, ("web-1 terminated out of band (i-web-1)",))


def test_a_machine_our_job_destroyed_is_recreated_without_drift() -> None:
    machines = [machine("web-0"), machine("web-1", state="terminated")]
    result = run([resource(count=2)], machines, known=2, destroyed=frozenset({"i-web-1"}))
    assert ops(result) == [(Op.CREATE, "web-1", None)]
    assert report(result)[2] == ()


def test_a_lookalike_in_a_wanted_slot_is_refused_with_adopt_not_duplicated() -> None:
    stray = machine("web-1", owner="")
    result = run([resource(count=2)], [machine("web-0"), stray])
    assert result.actions == ()
    [refusal] = result.refusals
    assert (refusal.slot, refusal.cloud_id) == ("web-1", "i-web-1")
    assert "adopt" in refusal.reason
    assert report(result)[2] == ("web-1: owner tag gone from i-web-1 out of band",)


def test_a_terminated_lookalike_does_not_hold_a_slot() -> None:
    result = run([resource(count=1)], [machine("web-0", owner="", state="terminated")])
    assert ops(result) == [(Op.CREATE, "web-0", None)]


# --- keys -----------------------------------------------------------------------------


def test_action_keys_are_stable_across_plans_of_the_same_input() -> None:
    machines = [*running("web", 4, size="small"), machine("old-0")]
    spec = [resource(count=3, size="large"), resource("db", 1)]
    first, second = run(spec, machines), run(spec, machines)
    assert [a.key for a in first.actions] == [a.key for a in second.actions]
    assert [a.key for a in first.actions] == [
        "web|web-0|resize|i-web-0",
        "web|web-3|destroy|i-web-3",
        "db|db-0|create|",
        "old|old-0|destroy|i-old-0",
    ]
    assert first == second


def test_a_key_names_resource_slot_op_and_machine() -> None:
    action = Action(
        op=Op.START, platform=PLATFORM, resource="web", slot="web-1", reason="r", cloud_id="i-1"
    )
    assert action.key == "web|web-1|start|i-1"


# --- found while writing these: contradictory actions in one plan -----------------------


def _acted_on_twice(result: Plan) -> dict[str, list[Op]]:
    by_machine: dict[str, list[Op]] = {}
    for action in result.actions:
        if action.cloud_id is not None:
            by_machine.setdefault(action.cloud_id, []).append(action.op)
    return {k: v for k, v in by_machine.items() if Op.DESTROY in v and len(v) > 1}


def test_a_machine_the_plan_protects_is_not_also_destroyed_by_it() -> None:
    result = run(
        [resource(count=1, size="large", update="replace", protect=True)],
        [machine("web-0", size="small")],
    )
    assert _acted_on_twice(result) == {}


def test_a_machine_the_plan_destroys_is_not_also_started_by_it() -> None:
    result = run(
        [resource(count=1, size="large", update="replace")],
        [machine("web-0", size="small", state="stopped")],
    )
    assert _acted_on_twice(result) == {}


def test_protection_lost_out_of_band_is_repaired() -> None:
    result = run(
        [resource(count=1, protect=True)],
        [machine("web-0", protected=False)],
        protected=frozenset({"i-web-0"}),
    )
    assert ops(result) == [(Op.PROTECT, "web-0", "i-web-0")]
    assert report(result)[1] == 0
