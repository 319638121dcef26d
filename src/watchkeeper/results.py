"""What a check produces, shared by executors (which make it) and the engine (which reads it).

States carry their Nagios exit code, so plugin exit codes map without a table elsewhere.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class CheckState(enum.Enum):
    """Service states, as the Nagios plugin API defines them; the value is the exit code."""

    #: The check passed.
    OK = 0
    #: Above a warning threshold, or the plugin says so.
    WARNING = 1
    #: Above a critical threshold, or the target is down.
    CRITICAL = 2
    #: The check itself could not tell (bad arguments, timeout, no worker, stale).
    UNKNOWN = 3

    @classmethod
    def from_exit_code(cls, code: int) -> CheckState:
        """Map an exit code 0-3 to its state; anything else is UNKNOWN here.

        This is the raw mapping. What a plugin's exit outside 0-3 *means* is the plugin
        executor's setting (``out_of_bounds_state``, CRITICAL by default as in Nagios Core;
        Icinga 2 uses UNKNOWN), see `watchkeeper.worker.executors.plugin.plugin_outcome`.
        """
        return cls(code) if 0 <= code <= 3 else cls.UNKNOWN

    @property
    def is_problem(self) -> bool:
        return self is not CheckState.OK

    @property
    def severity(self) -> int:
        """Order for sorting problems: CRITICAL above UNKNOWN above WARNING above OK."""
        return {0: 0, 1: 1, 3: 2, 2: 3}[self.value]


@dataclass(frozen=True, slots=True, kw_only=True)
class Metric:
    """One perfdata value: ``label=value[UOM];[warn];[crit];[min];[max]``."""

    label: str
    value: float
    uom: str = ""
    warn: str | None = None
    crit: str | None = None
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckOutcome:
    """The result of running one check once, before the engine interprets it."""

    state: CheckState
    output: str
    long_output: str = ""
    metrics: tuple[Metric, ...] = field(default_factory=tuple)
    #: Seconds the check took, measured by the executor.
    duration: float = 0.0
    #: Structured facts for jobs that report more than a state (an infrastructure
    #: observation's machines); None for checks and actions.
    data: dict[str, Any] | None = None
