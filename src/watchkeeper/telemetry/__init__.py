"""Telemetry: what checks measure, as the engine and the web read it.

Plugin text ──▶ parse_output() ──▶ ParsedOutput(output, long_output, metrics: Metric...)

Built-in executors build the same `watchkeeper.results.Metric` values directly, so a
threshold on ``time`` means the same thing whether check_tcp or the tcp executor ran.
"""

from __future__ import annotations

from watchkeeper.telemetry.perfdata import (
    GUIDELINE_UOMS,
    ParsedOutput,
    format_perfdata,
    parse_output,
    parse_perfdata,
)

__all__ = [
    "GUIDELINE_UOMS",
    "ParsedOutput",
    "format_perfdata",
    "parse_output",
    "parse_perfdata",
]
