"""Nagios range syntax, checked against the table of the plugin development guidelines."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchkeeper.document.ranges import Range, parse_range

# (range, value, alerts?) straight from the guidelines' table, with the boundary values:
# a range is closed, so its end points never alert (and always alert when inverted).
GUIDELINE_TABLE = [
    # "10": alert if < 0 or > 10
    ("10", -0.001, True),
    ("10", 0, False),
    ("10", 5, False),
    ("10", 10, False),
    ("10", 10.001, True),
    # "10:": alert if < 10
    ("10:", 9.999, True),
    ("10:", 10, False),
    ("10:", 1e12, False),
    # "~:10": alert if > 10
    ("~:10", -1e12, False),
    ("~:10", 10, False),
    ("~:10", 10.001, True),
    # "10:20": alert if < 10 or > 20
    ("10:20", 9.999, True),
    ("10:20", 10, False),
    ("10:20", 15, False),
    ("10:20", 20, False),
    ("10:20", 20.001, True),
    # "@10:20": alert if >= 10 and <= 20
    ("@10:20", 9.999, False),
    ("@10:20", 10, True),
    ("@10:20", 15, True),
    ("@10:20", 20, True),
    ("@10:20", 20.001, False),
]


@pytest.mark.parametrize(("text", "value", "alerts"), GUIDELINE_TABLE)
def test_guideline_table(text: str, value: float, alerts: bool) -> None:
    assert parse_range(text).alerts(value) is alerts


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10", Range(start=0, end=10)),
        ("10:", Range(start=10, end=math.inf)),
        ("~:10", Range(start=-math.inf, end=10)),
        ("10:20", Range(start=10, end=20)),
        ("@10:20", Range(start=10, end=20, inside=True)),
        ("@10", Range(start=0, end=10, inside=True)),
        (":10", Range(start=0, end=10)),  # accepted by check_* plugins: means 0:10
        ("~:", Range(start=-math.inf, end=math.inf)),
        ("-5:-1", Range(start=-5, end=-1)),
        ("0.5", Range(start=0, end=0.5)),
        (".5:1e3", Range(start=0.5, end=1000)),
        ("  10:20  ", Range(start=10, end=20)),
    ],
)
def test_parse(text: str, expected: Range) -> None:
    assert parse_range(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "is not a Nagios range"),
        ("   ", "is not a Nagios range"),
        ("@", "is not a Nagios range"),
        ("~", "is not a Nagios range"),
        ("abc", "is not a Nagios range"),
        ("10:20:30", "is not a Nagios range"),
        ("10%", "is not a Nagios range"),
        ("@@10", "is not a Nagios range"),
        ("nan", "is not a Nagios range"),
        ("inf", "is not a Nagios range"),
        ("20:10", "start 20 is above end 10"),
        ("-10", "start 0 is above end -10"),
    ],
)
def test_invalid_ranges_say_what_is_wrong(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment) as info:
        parse_range(text)
    assert repr(text) in str(info.value)


def test_the_error_lists_examples() -> None:
    with pytest.raises(ValueError, match=r"examples: 10, 10:, ~:10, 10:20, @10:20"):
        parse_range("ten")


@pytest.mark.parametrize("text", ["10", "10:", "~:10", "10:20", "@10:20", "@10", "~:", "0.5:2.5"])
def test_str_is_the_canonical_text(text: str) -> None:
    assert str(parse_range(text)) == text


def test_str_of_the_default_range() -> None:
    assert str(Range()) == "0:"
    assert parse_range("0:") == Range()


_finite = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)


@st.composite
def ranges(draw: st.DrawFn) -> Range:
    start = draw(st.one_of(_finite, st.just(-math.inf)))
    end = draw(st.one_of(_finite, st.just(math.inf)))
    if start > end:
        start, end = end, start
    return Range(start=start, end=end, inside=draw(st.booleans()))


@settings(max_examples=200, deadline=None)
@given(ranges())
def test_str_round_trips(r: Range) -> None:
    assert parse_range(str(r)) == r


@settings(max_examples=200, deadline=None)
@given(ranges(), _finite)
def test_inverted_range_alerts_exactly_when_the_plain_one_does_not(r: Range, value: float) -> None:
    plain = Range(start=r.start, end=r.end, inside=False)
    inverted = Range(start=r.start, end=r.end, inside=True)
    assert plain.alerts(value) is not inverted.alerts(value)
    assert plain.alerts(value) is not (r.start <= value <= r.end)
