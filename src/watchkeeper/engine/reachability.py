"""Host states from host checks and parents: UP, DOWN, or UNREACHABLE behind failed parents.

A host whose own check fails is UNREACHABLE when *every* parent is DOWN or UNREACHABLE, and
DOWN otherwise (one parent UP is enough to blame the host; a host with no parents is never
unreachable). A parent counts as failed exactly when its own check fails, whatever its
parents say, so a host's state depends only on its own check and its direct parents'
checks: no recursion, no cycle to guard against, and a change to one host can move only
that host and its children.

A host without a host check (or before its first result) is UP, as the document says.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from watchkeeper.engine.statemachine import CheckStatus
from watchkeeper.engine.states import HostState, StateType


def raw_host_state(check: CheckStatus | None) -> HostState:
    """The host check's own verdict, before parents are considered."""
    if check is None or check.pending:
        return HostState.UP
    return HostState.from_check_state(check.state)


def resolve(raw: HostState, parents: Iterable[HostState]) -> HostState:
    """Turn a failed host's DOWN into UNREACHABLE when all its parents' checks fail too."""
    if raw is HostState.UP:
        return HostState.UP
    seen = False
    for parent in parents:
        if parent is HostState.UP:
            return HostState.DOWN
        seen = True
    return HostState.UNREACHABLE if seen else HostState.DOWN


class HostGraph:
    """Parents of the hosts that have a host check, with the reverse index.

    Only hosts with a check can fail, so only they need parents; the children index tells
    which hosts to re-resolve when one host's check changes its verdict.
    """

    def __init__(self, parents: Mapping[str, Sequence[str]] | None = None) -> None:
        self._parents: dict[str, tuple[str, ...]] = {}
        self._children: dict[str, set[str]] = {}
        for host, names in (parents or {}).items():
            self.set(host, names)

    def set(self, host: str, parents: Sequence[str]) -> None:
        self.discard(host)
        # A host cannot be its own parent; validation rejects it, this keeps the rule total.
        names = tuple(dict.fromkeys(p for p in parents if p != host))
        self._parents[host] = names
        for parent in names:
            self._children.setdefault(parent, set()).add(host)

    def discard(self, host: str) -> None:
        for parent in self._parents.pop(host, ()):
            children = self._children.get(parent)
            if children is not None:
                children.discard(host)
                if not children:
                    del self._children[parent]

    def parents(self, host: str) -> tuple[str, ...]:
        return self._parents.get(host, ())

    def children(self, host: str) -> frozenset[str]:
        return frozenset(self._children.get(host, ()))

    def state(self, host: str, raw: Callable[[str], HostState]) -> HostState:
        """The host's state, given each host's raw verdict (`raw_host_state`)."""
        return resolve(raw(host), (raw(p) for p in self.parents(host)))


@dataclass(frozen=True, slots=True, kw_only=True)
class HostStatus:
    """A host's resolved state; the type follows its host check (UP is always HARD)."""

    host: str
    state: HostState = HostState.UP
    state_type: StateType = StateType.HARD
    output: str = ""
    last_state_change: float
    last_hard_state: HostState = HostState.UP
    last_hard_change: float

    @classmethod
    def initial(cls, host: str, now: float) -> HostStatus:
        return cls(host=host, last_state_change=now, last_hard_change=now)

    def evolve(self, **changes: Any) -> HostStatus:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, slots=True, kw_only=True)
class HostStateChange:
    """One host history entry; ``hard`` marks a change of the last hard state, as for checks."""

    host: str
    at: float
    from_state: HostState
    from_type: StateType
    to_state: HostState
    to_type: StateType
    hard: bool
    output: str

    @property
    def pages(self) -> bool:
        """A hard change to DOWN: the one host change that should wake someone."""
        return self.hard and self.to_state.pages


def host_transition(
    status: HostStatus, *, state: HostState, state_type: StateType, output: str, now: float
) -> tuple[HostStatus, HostStateChange | None]:
    """Move a host to its newly resolved state; a history entry if (state, type) moved."""
    if state is HostState.UP:
        state_type = StateType.HARD
    hard_state = state if state_type is StateType.HARD else status.last_hard_state
    new = status.evolve(
        state=state,
        state_type=state_type,
        output=output,
        last_state_change=now if state is not status.state else status.last_state_change,
        last_hard_state=hard_state,
        last_hard_change=now
        if hard_state is not status.last_hard_state
        else status.last_hard_change,
    )
    if state is status.state and state_type is status.state_type:
        return new, None
    change = HostStateChange(
        host=status.host,
        at=now,
        from_state=status.state,
        from_type=status.state_type,
        to_state=state,
        to_type=state_type,
        hard=hard_state is not status.last_hard_state,
        output=output,
    )
    return new, change
