"""Durations as operators write them: ``30s``, ``5m``, ``1h30m``, ``1d``, ``250ms``."""

from __future__ import annotations

import functools
import re
from datetime import timedelta

DURATION_PATTERN = r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+$"
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_FULL = re.compile(DURATION_PATTERN)
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """Parse a duration string; raise ValueError naming the accepted form."""
    if not isinstance(text, str):
        raise ValueError(
            f"{text!r} is not a duration: use a string with a unit (ms, s, m, h, d, w), "
            "for example 30s, 5m, 1h30m"
        )
    return _parse(text)


@functools.lru_cache(maxsize=4096)
def _parse(text: str) -> timedelta:
    """Cached: large documents repeat the same few durations thousands of times."""
    if not _FULL.fullmatch(text):
        raise ValueError(
            f"{text!r} is not a duration: use a number with a unit (ms, s, m, h, d, w), "
            "for example 30s, 5m, 1h30m"
        )
    parts = _PART.findall(text)
    try:  # a timedelta per part, summed exactly: a float sum loses milliseconds
        return sum((timedelta(seconds=float(n) * _UNIT_SECONDS[u]) for n, u in parts), timedelta())
    except OverflowError:
        raise ValueError(f"{text!r} is too long a duration") from None


@functools.lru_cache(maxsize=4096)
def format_duration(value: timedelta) -> str:
    """Render a timedelta in the shortest form that `parse_duration` reads back exactly."""
    millis = round(value.total_seconds() * 1000)
    if millis == 0:
        return "0s"
    parts: list[str] = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    if millis:
        parts.append(f"{millis}ms")
    return "".join(parts)
