"""Durations as operators write them, and their canonical text."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchkeeper.document.durations import DURATION_PATTERN, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("1h", timedelta(hours=1)),
        ("1d", timedelta(days=1)),
        ("2w", timedelta(weeks=2)),
        ("250ms", timedelta(milliseconds=250)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1m30s500ms", timedelta(minutes=1, seconds=30, milliseconds=500)),
        ("1.5h", timedelta(minutes=90)),
        ("0s", timedelta(0)),
    ],
)
def test_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "value", ["", "30", "s", "30 s", "-5s", "5x", "1h 30m", "1e3s", "5M", "1.s", ".5s", "soon"]
)
def test_rejects_what_is_not_a_duration(value: str) -> None:
    with pytest.raises(ValueError, match=r"is not a duration: use a number with a unit"):
        parse_duration(value)


@pytest.mark.parametrize("value", [30, 1.5, None, ["30s"]])
def test_rejects_non_strings(value: object) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["99999999999d", "9" * 400 + "s"])
def test_a_duration_too_long_for_timedelta_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="too long a duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(seconds=30), "30s"),
        (timedelta(seconds=90), "1m30s"),
        (timedelta(hours=1), "1h"),
        (timedelta(weeks=1), "7d"),
        (timedelta(days=1, hours=2, minutes=3, seconds=4, milliseconds=5), "1d2h3m4s5ms"),
        (timedelta(milliseconds=250), "250ms"),
    ],
)
def test_format(value: timedelta, text: str) -> None:
    assert format_duration(value) == text


def test_format_matches_the_published_pattern() -> None:
    assert re.fullmatch(DURATION_PATTERN, format_duration(timedelta(days=3, milliseconds=7)))


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=10**12))
def test_round_trip_from_timedelta(millis: int) -> None:
    value = timedelta(milliseconds=millis)
    text = format_duration(value)
    assert re.fullmatch(DURATION_PATTERN, text)
    assert parse_duration(text) == value


_units = st.sampled_from(["ms", "s", "m", "h", "d", "w"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(min_value=0, max_value=10_000), _units), min_size=1))
def test_round_trip_from_text(parts: list[tuple[int, str]]) -> None:
    text = "".join(f"{n}{unit}" for n, unit in parts)
    value = parse_duration(text)
    assert parse_duration(format_duration(value)) == value
    assert format_duration(parse_duration(format_duration(value))) == format_duration(value)
