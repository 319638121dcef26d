"""The template helpers: compact durations, ages, UTC times, state classes, output."""

from __future__ import annotations

from datetime import UTC, datetime

from watchkeeper.web.ui import formatting


def test_durations_keep_the_two_largest_units() -> None:
    assert formatting.duration(0) == "0s"
    assert formatting.duration(59.6) == "1m"
    assert formatting.duration(192) == "3m 12s"
    assert formatting.duration(86_400 + 4 * 3600 + 61) == "1d 4h"
    assert formatting.duration(None) == "-"


def test_ages_look_back_or_ahead() -> None:
    assert formatting.age(100.0, 292.0) == "3m 12s ago"
    assert formatting.age(320.0, 300.0) == "in 20s"
    assert formatting.age(None, 300.0) == "never"


def test_times_are_utc() -> None:
    assert formatting.timestamp(1_767_268_800.0) == "2026-01-01 12:00:00Z"
    naive = datetime(2026, 1, 1, 12, 0, 0)
    assert formatting.timestamp(naive) == "2026-01-01 12:00:00Z"
    assert formatting.epoch_of(datetime(2026, 1, 1, 12, tzinfo=UTC)) == 1_767_268_800.0


def test_states_have_classes_and_output_splits_at_the_first_line() -> None:
    assert formatting.state_class("critical") == "st-critical"
    assert formatting.state_class("DOWN") == "st-critical"
    assert formatting.state_class("whatever") == "st-pending"
    assert formatting.split_output("OK - fine\nline 1\nline 2\n") == ("OK - fine", "line 1\nline 2")
    assert formatting.split_output("OK") == ("OK", "")
