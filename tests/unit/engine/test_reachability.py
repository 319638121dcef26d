"""Host states through parents: DOWN is the host's fault, UNREACHABLE its parents'."""

from __future__ import annotations

from collections.abc import Mapping

from hypothesis import given
from hypothesis import strategies as st

from tests.unit.engine.helpers import CRIT, OK, T0, WARN
from watchkeeper.engine import (
    CheckStatus,
    HostGraph,
    HostState,
    HostStatus,
    StateType,
    apply,
    host_transition,
    raw_host_state,
    resolve,
)

UP, DOWN, UNREACHABLE = HostState.UP, HostState.DOWN, HostState.UNREACHABLE


def states(graph: HostGraph, failed: set[str], hosts: list[str]) -> Mapping[str, HostState]:
    def raw(name: str) -> HostState:
        return DOWN if name in failed else UP

    return {h: graph.state(h, raw) for h in hosts}


def test_raw_state_of_a_host_check() -> None:
    assert raw_host_state(None) is UP  # no host check: UP, as the document says
    pending = CheckStatus.initial("h", T0)
    assert raw_host_state(pending) is UP
    assert raw_host_state(apply(pending, WARN, max_attempts=1, now=T0).status) is UP
    assert raw_host_state(apply(pending, CRIT, max_attempts=3, now=T0).status) is DOWN


def test_resolve() -> None:
    assert resolve(UP, [DOWN]) is UP
    assert resolve(DOWN, []) is DOWN  # no parents: never unreachable
    assert resolve(DOWN, [DOWN, UNREACHABLE]) is UNREACHABLE
    assert resolve(DOWN, [DOWN, UP]) is DOWN


def test_a_chain_is_unreachable_behind_the_first_failure() -> None:
    graph = HostGraph({"router": [], "switch": ["router"], "server": ["switch"]})
    hosts = ["router", "switch", "server"]
    assert states(graph, {"router", "switch", "server"}, hosts) == {
        "router": DOWN,
        "switch": UNREACHABLE,
        "server": UNREACHABLE,
    }
    # The switch itself answers: the server behind it is really down.
    assert states(graph, {"router", "server"}, hosts)["server"] is DOWN


def test_a_diamond_needs_both_parents_down() -> None:
    graph = HostGraph({"db": ["left", "right"], "left": ["core"], "right": ["core"]})
    hosts = ["core", "left", "right", "db"]
    assert states(graph, {"db", "left"}, hosts)["db"] is DOWN  # one parent up keeps it DOWN
    assert states(graph, {"db", "left", "right"}, hosts)["db"] is UNREACHABLE
    assert states(graph, {"core", "left", "right", "db"}, hosts) == {
        "core": DOWN,
        "left": UNREACHABLE,
        "right": UNREACHABLE,
        "db": UNREACHABLE,
    }


def test_a_parent_without_a_host_check_counts_as_up() -> None:
    graph = HostGraph({"server": ["unchecked"]})
    assert states(graph, {"server"}, ["server"])["server"] is DOWN


def test_the_graph_keeps_children_in_step_with_parents() -> None:
    graph = HostGraph({"a": ["p", "q"], "b": ["p"], "self": ["self"]})
    assert graph.children("p") == {"a", "b"}
    assert graph.parents("self") == ()
    graph.set("a", ["q"])
    assert graph.children("p") == {"b"}
    graph.discard("b")
    assert graph.children("p") == frozenset()
    assert graph.parents("b") == ()


hosts = st.sampled_from("abcdef")


@given(st.dictionaries(hosts, st.lists(hosts, max_size=3)), st.sets(hosts))
def test_unreachable_exactly_when_failed_and_every_parent_failed(
    parents: dict[str, list[str]], failed: set[str]
) -> None:
    graph = HostGraph(parents)
    for host in "abcdef":
        state = states(graph, failed, [host])[host]
        own = [p for p in parents.get(host, []) if p != host]
        if host not in failed:
            assert state is UP
        elif own and all(p in failed for p in own):
            assert state is UNREACHABLE
        else:
            assert state is DOWN


def test_host_transitions_record_changes_and_hard_ones() -> None:
    status = HostStatus.initial("h", T0)
    status, change = host_transition(
        status, state=DOWN, state_type=StateType.SOFT, output="x", now=T0 + 1
    )
    assert change is not None and not change.hard and not change.pages
    status, change = host_transition(
        status, state=UNREACHABLE, state_type=StateType.SOFT, output="x", now=T0 + 2
    )
    assert change is not None and change.from_state is DOWN and not change.hard
    status, change = host_transition(
        status, state=UNREACHABLE, state_type=StateType.HARD, output="x", now=T0 + 3
    )
    assert change is not None and change.hard and not change.pages  # unreachable never pages
    status, change = host_transition(
        status, state=DOWN, state_type=StateType.HARD, output="y", now=T0 + 4
    )
    assert change is not None and change.hard and change.pages
    assert status.last_hard_change == T0 + 4
    status, change = host_transition(
        status, state=DOWN, state_type=StateType.HARD, output="z", now=T0 + 5
    )
    assert change is None and status.output == "z"
    status, change = host_transition(
        status, state=UP, state_type=StateType.SOFT, output="ok", now=T0 + 6
    )
    assert change is not None and change.hard and status.state_type is StateType.HARD


def test_ok_is_up() -> None:
    status = apply(CheckStatus.initial("h", T0), OK, max_attempts=3, now=T0).status
    assert raw_host_state(status) is UP
