"""Nagios threshold range syntax, as in the Nagios plugin development guidelines.

    10      alert if value < 0 or > 10       (the range is 0..10)
    10:     alert if value < 10              (10..+inf)
    ~:10    alert if value > 10              (-inf..10)
    10:20   alert if value < 10 or > 20
    @10:20  alert if 10 <= value <= 20       (inverted: alert inside)

A pure parser: the document validator, the perfdata parser and the threshold evaluator
all share it, so a range means the same thing everywhere.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_RANGE = re.compile(rf"^(?P<inside>@)?(?:(?P<start>~|{_NUMBER})?:)?(?P<end>{_NUMBER})?$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Range:
    """A closed interval; a value outside it alerts (inside it when ``inside`` is set)."""

    start: float = 0.0
    end: float = math.inf
    inside: bool = False

    def alerts(self, value: float) -> bool:
        """Return True when ``value`` should raise an alert under this range."""
        within = self.start <= value <= self.end
        return within if self.inside else not within

    def __str__(self) -> str:
        start = "~" if self.start == -math.inf else _fmt(self.start)
        end = "" if self.end == math.inf else _fmt(self.end)
        text = end if start == "0" and end else f"{start}:{end}"
        return ("@" if self.inside else "") + text


def _fmt(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


@functools.lru_cache(maxsize=4096)
def parse_range(text: str) -> Range:
    """Parse a Nagios range; raise ValueError with a message that says what is wrong."""
    cleaned = text.strip()
    match = _RANGE.match(cleaned)
    if not cleaned or cleaned == "@" or match is None:
        raise ValueError(f"{text!r} is not a Nagios range (examples: 10, 10:, ~:10, 10:20, @10:20)")
    raw_start, raw_end = match.group("start"), match.group("end")
    if ":" in cleaned and raw_start is None:
        raw_start = "0"  # ":10" is allowed by check_* plugins and means 0:10
    if ":" not in cleaned and raw_end is None:
        raise ValueError(f"{text!r} is not a Nagios range: it has no end")
    start = -math.inf if raw_start == "~" else float(raw_start or 0)
    end = math.inf if raw_end is None else float(raw_end)
    if start > end:
        raise ValueError(f"{text!r} is not a Nagios range: start {start:g} is above end {end:g}")
    return Range(start=start, end=end, inside=match.group("inside") is not None)
