"""The seam between the engine loop and the stages after it (telemetry, alarms, remediation).

It lives with the engine, so the stages depend on the engine and never on the manager
that runs it. The manager's `EngineRunner` collects what each turn produced into one
`Observed` value and hands it to every `Downstream` in order, synchronously, inside its
loop: observing must be cheap (queue, count, decide in memory). Anything slow (database
writes, HTTP, SMTP) happens in the stage's own `run` task, which the manager starts beside
the runner and cancels at stop.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from watchkeeper.document.normalize import CheckRecord
from watchkeeper.engine.reachability import HostStateChange, HostStatus
from watchkeeper.engine.statemachine import CheckStatus, StateChange
from watchkeeper.engine.zones import ZoneStatus
from watchkeeper.results import CheckOutcome


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckResult:
    """A result the engine recorded: after thresholds were applied, with its check."""

    key: str
    record: CheckRecord
    #: The outcome as the engine saw it (thresholds applied; metrics as the check sent).
    outcome: CheckOutcome
    #: The outcome as the worker sent it, before thresholds.
    raw: CheckOutcome
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Observed:
    """What one turn of the runner produced, in the order it happened."""

    results: tuple[CheckResult, ...] = ()
    changes: tuple[StateChange, ...] = ()
    host_changes: tuple[HostStateChange, ...] = ()
    #: Every check status that changed this turn (the latest of each).
    statuses: tuple[CheckStatus, ...] = ()
    hosts: tuple[HostStatus, ...] = ()
    #: Checks an import removed.
    removed: tuple[str, ...] = ()
    #: Every zone whose health changed this turn (the latest of each); at loading, all.
    zones: tuple[ZoneStatus, ...] = ()
    #: The running checks after an import, when this turn applied one; else None.
    checks: Mapping[str, CheckRecord] | None = None
    #: Set on the turn of `EngineRunner.start`: statuses are the saved ones, not news.
    loading: bool = False

    def __bool__(self) -> bool:
        return bool(
            self.results
            or self.changes
            or self.host_changes
            or self.statuses
            or self.hosts
            or self.removed
            or self.zones
            or self.checks is not None
        )


class Downstream(Protocol):
    """A stage after the engine: told of every turn, with its own task for slow work."""

    def observe(self, observed: Observed, now: float) -> None:
        """Take in one turn; cheap and synchronous (it runs inside the engine loop)."""

    async def run(self) -> None:
        """Do the slow work (writes, deliveries) until cancelled; flush what is left then."""
