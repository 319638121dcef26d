"""The words operators read on a status page, with the rules that go with them."""

from __future__ import annotations

import enum

from watchkeeper.results import CheckState


class StateType(enum.Enum):
    """Whether a state is confirmed; notifications and remediation act on HARD states only."""

    #: Non-OK for fewer than ``max_attempts`` results in a row; rechecked at ``retry_interval``.
    SOFT = "soft"
    #: Confirmed: OK, or non-OK for ``max_attempts`` results in a row.
    HARD = "hard"


class HostState(enum.Enum):
    """Host states as Nagios defines them; the value is the Nagios host state code."""

    #: The host check passed (or warned), or the host has no host check.
    UP = 0
    #: The host check failed and at least one parent is UP (or the host has no parents).
    DOWN = 1
    #: The host check failed and every parent is DOWN or UNREACHABLE: not its own fault.
    UNREACHABLE = 2

    @classmethod
    def from_check_state(cls, state: CheckState) -> HostState:
        """OK and WARNING mean UP (Nagios treats a host check's warning so); the rest DOWN.

        UNREACHABLE is never a check's verdict: only the parents can make it (`resolve`).
        """
        if state is CheckState.OK or state is CheckState.WARNING:
            return cls.UP
        return cls.DOWN

    @property
    def is_problem(self) -> bool:
        """Services on a host in a problem state are flagged ``host_problem``."""
        return self is not HostState.UP

    @property
    def pages(self) -> bool:
        """Only DOWN pages someone: an unreachable host's problem belongs to its parents."""
        return self is HostState.DOWN
