"""Properties of the infrastructure planner: the guardrails no plan ever breaks.

Random documents (resources with counts, sizes, images, update and drift modes, protect
and confirm), random observations (owned machines and lookalikes, in wanted, extra and
malformed slots, in every state), random store protection, busy slots and limits.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from watchkeeper.document.slots import slot_index
from watchkeeper.infra.desired import Desired
from watchkeeper.infra.planner import LIVE_STATES, Knowledge, Observation, Op, PlanInput, plan
from watchkeeper.infra.providers.base import STATES, Machine

PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

OWNER = "cluster-1"
PLATFORM = "aws"
#: Resources of the document; "old" never is one (an owned machine of it is an orphan).
NAMES = ("web", "db", "api")
#: What a resource's ``confirm`` may name.
CONFIRMABLE = ("create", "destroy", "resize", "replace")
SIZES = (None, "small", "large")
IMAGES = (None, "ami-1", "ami-2")
#: Slots no resource has: malformed, or none.
ODD_SLOTS = ("web-07", "web-x", "")
#: Slots a job may be busy on: wanted, out of range, of a removed resource.
SLOTS = tuple(f"{n}-{i}" for n in (*NAMES, "old") for i in range(9))

# --- strategies ---------------------------------------------------------------------------


def one_in(draw: st.DrawFn, n: int) -> bool:
    return draw(st.integers(min_value=1, max_value=n)) == 1


@st.composite
def resource_specs(draw: st.DrawFn, name: str) -> dict[str, Any]:
    return {
        "name": name,
        # now and then a resource of another platform: never planned here
        "platform": "gcp" if one_in(draw, 5) else PLATFORM,
        "count": draw(st.integers(min_value=0, max_value=6)),
        "size": draw(st.sampled_from(SIZES)),
        "image": draw(st.sampled_from(IMAGES)),
        "update": draw(st.sampled_from(("in-place", "replace", "create-before-destroy"))),
        "drift": draw(st.sampled_from(("repair", "report"))),
        "protect": draw(st.booleans()),
        "confirm": sorted(draw(st.sets(st.sampled_from(CONFIRMABLE)))),
    }


@st.composite
def machines(draw: st.DrawFn, index: int, wanted: list[str], extra: list[str]) -> Machine:
    if wanted and not one_in(draw, 3):
        slot = draw(st.sampled_from(wanted))
    elif not one_in(draw, 3):  # scaled down: past the count
        slot = draw(st.sampled_from(extra))
    elif one_in(draw, 4):
        slot = draw(st.sampled_from(ODD_SLOTS))
    else:  # out of range, another resource's, a removed resource's
        slot = draw(st.sampled_from(SLOTS))
    # usually the slot's own resource; sometimes a tag that disagrees with the slot
    resource = slot.rsplit("-", 1)[0] if slot else ""
    if one_in(draw, 6):
        resource = draw(st.sampled_from((*NAMES, "old", "")))
    owner = OWNER if not one_in(draw, 4) else draw(st.sampled_from(("cluster-2", "")))
    return Machine(
        cloud_id=f"i-{index:04d}",
        resource=resource,
        slot=slot,
        owner=owner,
        state=draw(st.sampled_from(STATES)),
        size=draw(st.sampled_from(SIZES)),
        image=None if one_in(draw, 2) else draw(st.sampled_from(IMAGES)),
        protected=one_in(draw, 5),
        created_at=draw(st.none() | st.floats(min_value=0.0, max_value=1e6)),
    )


@st.composite
def plan_inputs(draw: st.DrawFn) -> PlanInput:
    names = draw(st.lists(st.sampled_from(NAMES), unique=True, min_size=1))
    resources = [draw(resource_specs(name)) for name in names]
    limits = {
        "max_create": draw(st.integers(min_value=0, max_value=6)),
        "max_destroy": draw(st.integers(min_value=0, max_value=4)),
    }
    desired = Desired.from_specs(
        platforms=[{"name": PLATFORM, "provider": "ec2", "zone": "eu", "limits": limits}],
        resources=resources,
    )
    here = desired.on(PLATFORM)
    wanted = [slot for r in here for slot in r.slots]
    extra = [f"{r.name}-{r.count + k}" for r in here for k in range(3)] or ["old-0"]
    size = draw(st.integers(min_value=0, max_value=16))
    observed = tuple(draw(machines(i, wanted, extra)) for i in range(size))
    ids = [m.cloud_id for m in observed] or ["i-none"]
    return PlanInput(
        desired=desired,
        platform=desired.platforms[PLATFORM],
        observation=Observation(
            platform=PLATFORM,
            machines=observed,
            error="RequestLimitExceeded" if one_in(draw, 6) else "",
        ),
        owner=OWNER,
        known=draw(st.integers(min_value=1, max_value=5)) if one_in(draw, 3) else 0,
        protected=frozenset(draw(st.sets(st.sampled_from(ids), max_size=3))),
        busy=frozenset(draw(st.sets(st.sampled_from((*wanted, *SLOTS)), max_size=3))),
        only=draw(st.frozensets(st.sampled_from((*NAMES, "old")))) if one_in(draw, 4) else None,
        destroyed=frozenset(draw(st.sets(st.sampled_from(ids), max_size=3))),
    )


@st.composite
def fleets(draw: st.DrawFn) -> PlanInput:
    """Only our own machines, in the wanted slots and just past them, some two to a slot:
    scale-downs and updates in progress, which random observations rarely reach."""
    names = draw(st.lists(st.sampled_from(NAMES), unique=True, min_size=1, max_size=2))
    resources = [
        {
            "name": name,
            "platform": PLATFORM,
            "count": draw(st.integers(min_value=0, max_value=6)),
            "size": draw(st.sampled_from(("small", "large"))),
            "update": draw(st.sampled_from(("in-place", "replace", "create-before-destroy"))),
            "drift": draw(st.sampled_from(("repair", "report"))),
            "protect": one_in(draw, 4),
            "confirm": sorted(draw(st.sets(st.sampled_from(CONFIRMABLE)))),
        }
        for name in names
    ]
    limits = {
        "max_create": draw(st.integers(min_value=0, max_value=6)),
        "max_destroy": draw(st.integers(min_value=0, max_value=6)),
    }
    desired = Desired.from_specs(
        platforms=[{"name": PLATFORM, "provider": "ec2", "zone": "eu", "limits": limits}],
        resources=resources,
    )
    observed: list[Machine] = []
    slots: list[str] = []
    for r in desired.resources.values():
        for index in range(r.count + draw(st.integers(min_value=0, max_value=4))):
            slot = f"{r.name}-{index}"
            slots.append(slot)
            for _ in range(draw(st.sampled_from((0, 1, 1, 1, 2)))):
                observed.append(
                    Machine(
                        cloud_id=f"i-{len(observed):04d}",
                        resource=r.name,
                        slot=slot,
                        owner=OWNER,
                        state=draw(st.sampled_from(("running", "running", "stopped", "pending"))),
                        size=draw(st.sampled_from(SIZES)),
                        protected=one_in(draw, 6),
                        created_at=float(draw(st.integers(min_value=0, max_value=100))),
                    )
                )
    shuffled = draw(st.permutations(observed))
    return PlanInput(
        desired=desired,
        platform=desired.platforms[PLATFORM],
        observation=Observation(platform=PLATFORM, machines=tuple(shuffled)),
        owner=OWNER,
        protected=frozenset(m.cloud_id for m in observed if one_in(draw, 8)),
        busy=frozenset(draw(st.sets(st.sampled_from(slots), max_size=1)) if slots else ()),
    )


#: Every plan input the properties hold for.
inputs = plan_inputs() | fleets()


def by_id(given_input: PlanInput) -> dict[str, Machine]:
    return {m.cloud_id: m for m in given_input.observation.machines}


ON_MACHINES = frozenset({Op.DESTROY, Op.RESIZE, Op.START, Op.PROTECT})

# --- the guardrails -----------------------------------------------------------------------


@PROPERTY
@given(inputs)
def test_only_machines_with_our_owner_tag_are_ever_acted_on(given_input: PlanInput) -> None:
    result = plan(given_input)
    machines_by_id = by_id(given_input)
    for action in result.actions:
        if action.op in ON_MACHINES:
            assert action.cloud_id is not None
            target = machines_by_id[action.cloud_id]
            assert target.owner == given_input.owner and target.owner != ""
        else:
            assert action.op is Op.CREATE and action.cloud_id is None
    assert list(result.lookalikes) == [
        m for m in given_input.observation.machines if m.owner != OWNER
    ]


@PROPERTY
@given(inputs)
def test_an_empty_owner_id_makes_nothing_ours(given_input: PlanInput) -> None:
    """Even a planner given "" as its owner never acts on an untagged machine."""
    result = plan(dataclasses.replace(given_input, owner=""))
    for action in result.actions:
        assert action.op is Op.CREATE


@PROPERTY
@given(inputs)
def test_no_protected_machine_is_ever_destroyed(given_input: PlanInput) -> None:
    result = plan(given_input)
    machines_by_id = by_id(given_input)
    for action in result.actions:
        if action.op is Op.DESTROY:
            assert action.cloud_id is not None
            assert not machines_by_id[action.cloud_id].protected
            assert action.cloud_id not in given_input.protected


@PROPERTY
@given(inputs, st.booleans())
def test_a_failed_or_untrusted_empty_observation_plans_nothing(
    given_input: PlanInput, failed: bool
) -> None:
    if failed:
        observation = dataclasses.replace(given_input.observation, error="timeout")
        given_input = dataclasses.replace(given_input, observation=observation)
    else:
        observation = dataclasses.replace(given_input.observation, machines=(), error="")
        known = max(given_input.known, 1)
        given_input = dataclasses.replace(given_input, observation=observation, known=known)
    result = plan(given_input)
    assert result.knowledge is Knowledge.UNKNOWN
    assert result.actions == ()
    assert result.refusals == ()
    assert result.reason
    assert all(r.unknown == result.reason and r.converged == 0 for r in result.reports)


@PROPERTY
@given(inputs)
def test_an_observation_is_unknown_exactly_when_failed_or_untrusted_empty(
    given_input: PlanInput,
) -> None:
    observation = given_input.observation
    result = plan(given_input)
    untrusted = observation.failed or (not observation.machines and given_input.known > 0)
    assert (result.knowledge is Knowledge.UNKNOWN) == untrusted


@PROPERTY
@given(inputs)
def test_creates_and_destroys_stay_within_the_platform_limits(given_input: PlanInput) -> None:
    result = plan(given_input)
    limits = given_input.platform.limits
    assert sum(a.op is Op.DESTROY for a in result.actions) <= limits.max_destroy
    assert sum(a.op is Op.CREATE for a in result.actions) <= limits.max_create


@PROPERTY
@given(inputs)
def test_no_action_targets_a_busy_slot(given_input: PlanInput) -> None:
    result = plan(given_input)
    assert not [a for a in result.actions if a.slot in given_input.busy]


@PROPERTY
@given(inputs)
def test_no_plan_unprotects(given_input: PlanInput) -> None:
    result = plan(given_input)
    assert Op.UNPROTECT not in {a.op for a in result.actions}


@PROPERTY
@given(inputs)
def test_every_action_and_refusal_says_why(given_input: PlanInput) -> None:
    result = plan(given_input)
    assert all(a.reason.strip() for a in result.actions)
    assert all(r.reason.strip() for r in result.refusals)


@PROPERTY
@given(inputs)
def test_scale_down_destroys_the_highest_extra_slot_first(given_input: PlanInput) -> None:
    result = plan(given_input)
    for resource in given_input.desired.on(PLATFORM):
        indexes = [
            slot_index(resource.name, a.slot)
            for a in result.actions
            if a.op is Op.DESTROY and a.resource == resource.name
        ]
        extra = [i for i in indexes if i is not None and i >= resource.count]
        assert extra == sorted(extra, reverse=True)


# --- more that every plan keeps ----------------------------------------------------------


@PROPERTY
@given(inputs)
def test_the_plan_is_a_function_of_its_input(given_input: PlanInput) -> None:
    first, second = plan(given_input), plan(given_input)
    assert first == second
    keys = [a.key for a in first.actions]
    assert len(keys) == len(set(keys))  # one job per key


#: How the reasons of a size or image update begin (resize, replace, create-before-destroy).
UPDATE_REASONS = ("resize ", "replace ")


@PROPERTY
@given(inputs)
def test_one_slot_per_resource_is_updated_at_a_time_and_none_while_one_is_busy(
    given_input: PlanInput,
) -> None:
    result = plan(given_input)
    for resource in given_input.desired.on(PLATFORM):
        updated = {
            a.slot
            for a in result.actions
            if a.resource == resource.name and a.reason.startswith(UPDATE_REASONS)
        }
        assert len(updated) <= 1
        if any(slot in given_input.busy for slot in resource.slots):
            assert updated == set()


@PROPERTY
@given(inputs)
def test_only_and_the_platform_bound_what_is_planned(given_input: PlanInput) -> None:
    result = plan(given_input)
    here = {r.name for r in given_input.desired.on(PLATFORM)}
    for action in result.actions:
        assert action.platform == PLATFORM
        if given_input.only is not None:
            assert action.resource in given_input.only
        if action.op is not Op.DESTROY:  # a destroy may clear a resource gone or moved
            assert action.resource in here
    assert {r.resource for r in result.reports} == here


@PROPERTY
@given(inputs)
def test_a_live_slot_is_never_created_again_unless_being_replaced(
    given_input: PlanInput,
) -> None:
    result = plan(given_input)
    filled = {
        m.slot
        for m in given_input.observation.machines
        if m.owner == OWNER and m.state in LIVE_STATES and m.resource == m.slot.rsplit("-", 1)[0]
    }
    for action in result.actions:
        if action.op is Op.CREATE and action.slot in filled:
            assert "create before destroy" in action.reason


@PROPERTY
@given(inputs)
def test_converged_never_exceeds_desired(given_input: PlanInput) -> None:
    for report in plan(given_input).reports:
        assert 0 <= report.converged <= report.desired


# --- one machine, one fate ----------------------------------------------------------------


def _replacing(stopped: bool, protect: bool) -> PlanInput:
    """One machine of the wrong size, its resource replaced on update."""
    spec = {"name": "web", "platform": PLATFORM, "count": 1, "size": "large"}
    desired = Desired.from_specs(
        platforms=[{"name": PLATFORM, "provider": "ec2", "zone": "eu"}],
        resources=[{**spec, "update": "replace", "protect": protect}],
    )
    state = "stopped" if stopped else "running"
    target = Machine(
        cloud_id="i-1", resource="web", slot="web-0", owner=OWNER, state=state, size="small"
    )
    return PlanInput(
        desired=desired,
        platform=desired.platforms[PLATFORM],
        observation=Observation(platform=PLATFORM, machines=(target,)),
        owner=OWNER,
    )


@PROPERTY
@example(_replacing(stopped=True, protect=False))
@example(_replacing(stopped=False, protect=True))
@given(inputs)
def test_a_machine_the_plan_destroys_gets_no_other_action(given_input: PlanInput) -> None:
    result = plan(given_input)
    destroyed = {a.cloud_id for a in result.actions if a.op is Op.DESTROY}
    others = [a for a in result.actions if a.op is not Op.DESTROY and a.cloud_id in destroyed]
    assert others == []
