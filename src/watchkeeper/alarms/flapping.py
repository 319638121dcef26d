"""Nagios flap detection: percent state change over the last 21 recorded states.

The algorithm is Nagios Core's ``check_for_service_flapping`` (base/flapping.c; described in
the Nagios documentation, "Detection and Handling of State Flapping"):

* each check keeps its last 21 recorded states; only hard states and recoveries are
  recorded (a soft non-OK result is not), as Nagios does;
* the 20 transitions between consecutive entries are compared; each one whose two states
  differ adds a weight that grows linearly with recency: ``(i - 1) * (HIGH - LOW) / 19 +
  LOW`` for the i-th transition (i = 1 the oldest, 20 the newest), so recent changes count
  more than old ones. Nagios Core's code uses LOW = 0.75 and HIGH = 1.25 (often quoted as
  "about 0.8 to 1.2"); we use the code's values so percentages match what Nagios shows;
* the percent state change is ``sum of weights * 100 / 20``;
* a check starts flapping when the percent reaches ``high`` and stops when it falls to
  ``low`` or below; in between, nothing changes (hysteresis). The document's defaults are
  low 25 and high 30 (``spec["flapping"]``).

Until 21 states are recorded the history is padded with the first one, as Nagios fills a
new object's history with its initial state; a fresh check therefore starts at 0 %.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: States kept per check (Nagios's ``MAX_STATE_HISTORY_ENTRIES``).
HISTORY = 21
#: Weight of the oldest and of the newest of the 20 transitions.
LOW_WEIGHT = 0.75
HIGH_WEIGHT = 1.25
DEFAULT_LOW = 25.0
DEFAULT_HIGH = 30.0


def percent_state_change(history: Sequence[int]) -> float:
    """Weighted percent of state changes in ``history`` (oldest first, at most 21 values)."""
    if len(history) > HISTORY:
        history = history[-HISTORY:]
    if not history:
        return 0.0
    padded = [history[0]] * (HISTORY - len(history)) + list(history)
    changes = 0.0
    for i in range(1, HISTORY):
        if padded[i] != padded[i - 1]:
            changes += (i - 1) * (HIGH_WEIGHT - LOW_WEIGHT) / (HISTORY - 2) + LOW_WEIGHT
    return changes * 100.0 / (HISTORY - 1)


@dataclass(frozen=True, slots=True, kw_only=True)
class FlapSettings:
    """``spec["flapping"]``: on by default, start at ``high`` percent, stop at ``low``."""

    enabled: bool = True
    low: float = DEFAULT_LOW
    high: float = DEFAULT_HIGH

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any] | None) -> FlapSettings:
        if not spec:
            return cls()
        return cls(
            enabled=bool(spec.get("enabled", True)),
            low=float(spec.get("low", DEFAULT_LOW)),
            high=float(spec.get("high", DEFAULT_HIGH)),
        )


class FlapChange(enum.Enum):
    """A change of a check's flapping flag."""

    START = "start"
    STOP = "stop"


class FlapDetector:
    """The flap state of one check: record each state, learn when flapping starts or stops."""

    def __init__(self, settings: FlapSettings | None = None) -> None:
        self.settings = settings or FlapSettings()
        self._history: deque[int] = deque(maxlen=HISTORY)
        self.flapping = False
        self.percent = 0.0

    def record(self, state: int) -> FlapChange | None:
        """Add a recorded state (a hard state or a recovery); say if flapping changed."""
        self._history.append(state)
        self.percent = percent_state_change(self._history)
        if not self.settings.enabled:
            return self._set(False)
        if self.percent >= self.settings.high:
            return self._set(True)
        if self.percent <= self.settings.low:
            return self._set(False)
        return None

    def configure(self, settings: FlapSettings) -> FlapChange | None:
        """New settings from an import; disabling flap detection stops a flapping check."""
        self.settings = settings
        return None if settings.enabled else self._set(False)

    def _set(self, flapping: bool) -> FlapChange | None:
        if flapping is self.flapping:
            return None
        self.flapping = flapping
        return FlapChange.START if flapping else FlapChange.STOP
