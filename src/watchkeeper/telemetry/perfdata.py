"""Plugin output and perfdata, per the Nagios plugin development guidelines.

    TEXT OUTPUT | OPTIONAL PERFDATA
    LONG TEXT LINE 1
    LONG TEXT LINE 2 | PERFDATA LINE 2
    PERFDATA LINE 3

Perfdata is a space-separated list of ``'label'=value[UOM];[warn];[crit];[min];[max]``.
Plugins are written by many hands, so the parser is tolerant: an item that does not fit
the grammar is skipped, and nothing here ever raises. Choices where the guidelines are
silent or plugins stray from them:

* A unit outside the guideline list (``s ms us % B KB MB GB TB c``) is kept as given
  (``MiB``, ``C``, ``B/s``): dropping the value would lose data, and Nagios itself stores
  perfdata verbatim. A unit must be letters, ``%``, ``/`` or ``°``; anything else
  (``1x2``, ``1,5``) makes the item malformed.
* A value of ``U`` (the plugin could not measure) has no number, so the item is skipped.
* Warn and crit are kept as range text, checked with `parse_range`; an invalid one
  becomes ``None`` without dropping the value. Min and max that are not numbers do too.
* Empty ``;`` fields at the end are ignored (``a=1;2;3;0;100;``, as Nagios and Icinga 2
  read it). More than five fields, an empty label, or an unquoted label containing a
  space make the item malformed. An unterminated quote skips to the next space.
* What is skipped is reported with its reason (`ParsedOutput.dropped`), so a worker can
  say once why a metric never shows up.

Pure functions: executors, the engine and tests share them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from watchkeeper.document.ranges import parse_range
from watchkeeper.results import Metric

#: The units the guidelines define; others are kept as given (see the module docstring).
GUIDELINE_UOMS = frozenset({"", "s", "ms", "us", "%", "B", "KB", "MB", "GB", "TB", "c"})

_VALUE = re.compile(
    r"^(?P<number>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)(?P<uom>[A-Za-z%/°µ]*)$"
)
_NEEDS_QUOTES = re.compile(r"[\s'=]")
_WORD = re.compile(r"[^\s=]*")
_NON_SPACE = re.compile(r"\S*")


@dataclass(frozen=True, slots=True, kw_only=True)
class ParsedOutput:
    """A plugin's output split the way Nagios splits it."""

    #: The first line without its perfdata: what operators see in lists.
    output: str
    #: The lines after the first, without perfdata; empty when there are none.
    long_output: str = ""
    metrics: tuple[Metric, ...] = field(default_factory=tuple)
    #: (item, why) for each perfdata item that could not be kept.
    dropped: tuple[tuple[str, str], ...] = ()


def parse_output(text: str) -> ParsedOutput:
    """Split plugin output into first line, long output and metrics.

    The first ``|`` of the first line starts perfdata; in the remaining lines, the first
    ``|`` ends the long output and everything after it, on any line, is perfdata.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n", 1)
    first, _, perf_first = lines[0].partition("|")
    rest = lines[1] if len(lines) > 1 else ""
    long_output, _, perf_rest = rest.partition("|")
    perfdata = f"{perf_first} {perf_rest}" if perf_rest else perf_first
    metrics, dropped = read_perfdata(perfdata)
    return ParsedOutput(
        output=first.strip(),
        long_output=long_output.strip("\n").rstrip(),
        metrics=metrics,
        dropped=dropped,
    )


def parse_perfdata(text: str) -> tuple[Metric, ...]:
    """Parse a perfdata string; malformed items are skipped, never raised."""
    return read_perfdata(text)[0]


def read_perfdata(text: str) -> tuple[tuple[Metric, ...], tuple[tuple[str, str], ...]]:
    """The metrics of a perfdata string, and (item, why) for each item skipped."""
    metrics: list[Metric] = []
    dropped: list[tuple[str, str]] = []
    for label, data, item in _items(text):
        if label is None:
            dropped.append((item, "not label=value"))
            continue
        metric = _metric(label, data)
        if isinstance(metric, str):
            dropped.append((item, metric))
        else:
            metrics.append(metric)
    return tuple(metrics), tuple(dropped)


def format_perfdata(metrics: Iterable[Metric]) -> str:
    """The inverse of `parse_perfdata`, for display and for plugins we wrap."""
    return " ".join(_format_metric(metric) for metric in metrics)


def _format_metric(metric: Metric) -> str:
    label = metric.label
    if _NEEDS_QUOTES.search(label):
        label = "'" + label.replace("'", "''") + "'"
    fields = [
        f"{_number(metric.value)}{metric.uom}",
        metric.warn or "",
        metric.crit or "",
        "" if metric.min is None else _number(metric.min),
        "" if metric.max is None else _number(metric.max),
    ]
    return f"{label}=" + ";".join(fields).rstrip(";")


def _number(value: float) -> str:
    value = float(value)  # an int slips through the float annotation easily
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def _items(text: str) -> Iterator[tuple[str | None, str, str]]:
    """Yield (label, data, item text); label None for a word that cannot be an item."""
    pos, size = 0, len(text)
    while pos < size:
        if text[pos].isspace():
            pos += 1
            continue
        start = pos
        if text[pos] == "'":
            label, end = _quoted_label(text, pos + 1)
            if label is None or end >= size or text[end] != "=":
                pos = _next_space(text, pos if label is None else end)
                yield None, "", text[start:pos]
                continue
            pos = end
        else:
            end = _span_end(_WORD, text, pos)
            if end >= size or text[end] != "=":
                pos = _next_space(text, end)  # a word with no "=": text strayed into perfdata
                yield None, "", text[start:pos]
                continue
            label, pos = text[pos:end], end
        data_end = _next_space(text, pos + 1)
        yield label, text[pos + 1 : data_end], text[start:data_end]
        pos = data_end


def _quoted_label(text: str, pos: int) -> tuple[str | None, int]:
    """Read a label after its opening quote; ``''`` is a quote. Return (label, index after)."""
    parts = []
    while True:
        close = text.find("'", pos)
        if close < 0:
            return None, len(text)
        parts.append(text[pos:close])
        if text.startswith("''", close):
            parts.append("'")
            pos = close + 2
            continue
        return "".join(parts), close + 1


def _next_space(text: str, pos: int) -> int:
    return _span_end(_NON_SPACE, text, pos)


def _span_end(pattern: re.Pattern[str], text: str, pos: int) -> int:
    match = pattern.match(text, pos)  # the patterns match the empty string: never None
    return match.end() if match else pos


def _metric(label: str, data: str) -> Metric | str:
    """The metric of one item, or why it cannot be one."""
    fields = data.split(";")
    while len(fields) > 1 and not fields[-1]:
        fields.pop()  # trailing separators: "a=1;2;3;0;100;" has five fields, not six
    if not label:
        return "empty label"
    if len(fields) > 5:
        return f"{len(fields)} fields, at most 5 (value;warn;crit;min;max)"
    if fields[0] == "U":
        return "value U (the plugin could not measure it)"
    match = _VALUE.match(fields[0])
    if match is None:
        return f"value {fields[0]!r} is not a number with a unit"
    value = float(match.group("number"))
    if not math.isfinite(value):
        return f"value {fields[0]!r} is not finite"
    fields += [""] * (5 - len(fields))
    return Metric(
        label=label,
        value=value,
        uom=match.group("uom"),
        warn=_range(fields[1]),
        crit=_range(fields[2]),
        min=_float(fields[3]),
        max=_float(fields[4]),
    )


def _range(text: str) -> str | None:
    if not text:
        return None
    try:
        parse_range(text)
    except ValueError:
        return None
    return text


def _float(text: str) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
