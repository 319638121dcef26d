"""Host states and state types carry the rules operators expect."""

from __future__ import annotations

import pytest

from watchkeeper.engine import HostState, StateType
from watchkeeper.results import CheckState


@pytest.mark.parametrize(
    ("check", "host"),
    [
        (CheckState.OK, HostState.UP),
        (CheckState.WARNING, HostState.UP),
        (CheckState.CRITICAL, HostState.DOWN),
        (CheckState.UNKNOWN, HostState.DOWN),
    ],
)
def test_a_host_check_state_maps_as_nagios_does(check: CheckState, host: HostState) -> None:
    assert HostState.from_check_state(check) is host


def test_only_up_is_not_a_problem_and_only_down_pages() -> None:
    assert [s.is_problem for s in HostState] == [False, True, True]
    assert [s.pages for s in HostState] == [False, True, False]


def test_host_state_values_are_the_nagios_codes() -> None:
    assert [s.value for s in HostState] == [0, 1, 2]
    assert {t.value for t in StateType} == {"soft", "hard"}
