"""The soft/hard state machine of one check: a pure function from (status, result) to status.

Nagios/Icinga semantics, in short:

* a non-OK result after OK starts a SOFT problem at attempt 1 (HARD at once when
  ``max_attempts`` is 1); each further non-OK result adds an attempt, and the attempt that
  reaches ``max_attempts`` makes the state HARD;
* a HARD non-OK state stays HARD when the result changes to another non-OK state (that is
  a hard state change of its own, e.g. WARNING to CRITICAL);
* OK is always HARD: a recovery from a SOFT problem is a *soft recovery* (nobody was told),
  from a HARD problem a *hard recovery*.

Before its first result a check is *pending*: Nagios shows PENDING and assumes OK/HARD, so
the first non-OK result starts a SOFT problem rather than paging at once. We do the same:
`CheckStatus.pending` is True and ``state`` is OK, so code that forgets to look at
``pending`` sees a harmless OK, never an invented problem.

`apply` returns a `Transition`, a value: the caller stores the status and the history entry.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from watchkeeper.engine.states import StateType
from watchkeeper.results import CheckOutcome, CheckState


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckStatus:
    """What the engine knows about one check now; times are seconds on the engine's clock."""

    key: str
    state: CheckState = CheckState.OK
    state_type: StateType = StateType.HARD
    #: 1-based count of non-OK results in a row (1 while OK); ``max_attempts`` once HARD.
    attempt: int = 1
    output: str = ""
    #: No result yet; ``state`` is the assumed OK until then.
    pending: bool = True
    #: The current state is not fresh: the engine set it because no result came in time,
    #: or (with ``not_run``) the check's latest runs did not happen.
    stale: bool = False
    #: Why the check's latest due run did not happen (no worker of its zone could take it),
    #: or "". State, output and attempt stay the last real result's: a check that cannot
    #: run has told nothing new, so it changes no state, pages nobody, downs no host.
    not_run: str = ""
    #: The check's host is DOWN or UNREACHABLE: notification code may stay quiet.
    host_problem: bool = False
    last_check: float | None = None
    last_state_change: float
    last_hard_state: CheckState = CheckState.OK
    last_hard_change: float

    @classmethod
    def initial(cls, key: str, now: float) -> CheckStatus:
        return cls(key=key, last_state_change=now, last_hard_change=now)

    def evolve(self, **changes: Any) -> CheckStatus:
        return dataclasses.replace(self, **changes)

    @property
    def is_problem(self) -> bool:
        return not self.pending and self.state.is_problem

    @property
    def is_hard_problem(self) -> bool:
        return self.is_problem and self.state_type is StateType.HARD

    @property
    def retrying(self) -> bool:
        """A SOFT problem: the scheduler rechecks it at ``retry_interval``."""
        return self.is_problem and self.state_type is StateType.SOFT

    def log_context(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "state": "PENDING" if self.pending else self.state.name,
            "state_type": self.state_type.value,
            "attempt": self.attempt,
            "stale": self.stale,
            "not_run": self.not_run,
            "host_problem": self.host_problem,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class StateChange:
    """One history entry: the (state, state type) of a check changed, or its first result came.

    ``hard`` marks a change of the last hard state (a soft problem turning hard, a hard
    problem changing state, a hard recovery): the changes notifications act on.
    """

    key: str
    at: float
    #: None for the first result of a check.
    from_state: CheckState | None
    from_type: StateType | None
    to_state: CheckState
    to_type: StateType
    attempt: int
    hard: bool
    output: str
    host_problem: bool = False
    stale: bool = False

    @property
    def is_recovery(self) -> bool:
        return self.to_state is CheckState.OK and bool(
            self.from_state and self.from_state.is_problem
        )

    def log_context(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "at": self.at,
            "from": None if self.from_state is None else self.from_state.name,
            "to": self.to_state.name,
            "type": self.to_type.value,
            "attempt": self.attempt,
            "hard": self.hard,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Transition:
    """The decision for one result: the new status, and a history entry if the state moved."""

    status: CheckStatus
    change: StateChange | None = None


def apply(
    status: CheckStatus,
    outcome: CheckOutcome,
    *,
    max_attempts: int,
    now: float,
    host_problem: bool | None = None,
    stale: bool = False,
) -> Transition:
    """Fold one result into a status (see the module docstring for the rules).

    ``host_problem`` None keeps the flag as it is; ``stale`` marks a result the engine
    made up because none came in time.
    """
    state = outcome.state
    state_type, attempt = _next_type_and_attempt(status, state, max(1, max_attempts))
    hard_state = state if state_type is StateType.HARD else status.last_hard_state
    flag = status.host_problem if host_problem is None else host_problem
    new = status.evolve(
        state=state,
        state_type=state_type,
        attempt=attempt,
        output=outcome.output,
        pending=False,
        stale=stale,
        not_run="",
        host_problem=flag,
        last_check=now,
        last_state_change=now
        if status.pending or state is not status.state
        else status.last_state_change,
        last_hard_state=hard_state,
        last_hard_change=now
        if hard_state is not status.last_hard_state
        else status.last_hard_change,
    )
    moved = status.pending or state is not status.state or state_type is not status.state_type
    if not moved:
        return Transition(status=new)
    change = StateChange(
        key=status.key,
        at=now,
        from_state=None if status.pending else status.state,
        from_type=None if status.pending else status.state_type,
        to_state=state,
        to_type=state_type,
        attempt=attempt,
        hard=hard_state is not status.last_hard_state,
        output=outcome.output,
        host_problem=flag,
        stale=stale,
    )
    return Transition(status=new, change=change)


def _next_type_and_attempt(
    status: CheckStatus, state: CheckState, max_attempts: int
) -> tuple[StateType, int]:
    if not state.is_problem:
        return StateType.HARD, 1
    if not status.is_problem:
        # A new problem (after OK or before any result).
        return (StateType.HARD, max_attempts) if max_attempts == 1 else (StateType.SOFT, 1)
    if status.state_type is StateType.HARD:
        return StateType.HARD, max_attempts
    attempt = status.attempt + 1
    if attempt >= max_attempts:
        return StateType.HARD, max_attempts
    return StateType.SOFT, attempt
