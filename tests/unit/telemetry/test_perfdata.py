"""Plugin output and perfdata: the guidelines' examples, real plugin output, malformed text.

The "real" outputs were captured from Debian 12's monitoring-plugins-basic 2.3.3 on a
test machine (check_disk trimmed to two file systems).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watchkeeper.results import Metric
from watchkeeper.telemetry import GUIDELINE_UOMS, format_perfdata, parse_output, parse_perfdata


def m(label: str, value: float, uom: str = "", **kw: Any) -> Metric:
    return Metric(label=label, value=value, uom=uom, **kw)


# --- the guidelines -----------------------------------------------------------------------


def test_guideline_multiline_example() -> None:
    text = (
        "DISK OK - free space: / 3326 MB (56%); | /=2643MB;5948;5958;0;5968\n"
        "/ 15272 MB (77%);\n"
        "/boot 68 MB (69%);\n"
        "/home 69357 MB (27%);\n"
        "/var/log 819 MB (84%); | /boot=68MB;88;93;0;98\n"
        "/home=69357MB;253404;253409;0;253414 \n"
        "/var/log=818MB;970;975;0;980\n"
    )
    parsed = parse_output(text)
    assert parsed.output == "DISK OK - free space: / 3326 MB (56%);"
    assert parsed.long_output == (
        "/ 15272 MB (77%);\n/boot 68 MB (69%);\n/home 69357 MB (27%);\n/var/log 819 MB (84%);"
    )
    assert parsed.metrics == (
        m("/", 2643, "MB", warn="5948", crit="5958", min=0, max=5968),
        m("/boot", 68, "MB", warn="88", crit="93", min=0, max=98),
        m("/home", 69357, "MB", warn="253404", crit="253409", min=0, max=253414),
        m("/var/log", 818, "MB", warn="970", crit="975", min=0, max=980),
    )


@pytest.mark.parametrize(
    ("text", "output", "long_output", "labels"),
    [
        (
            "DISK OK - free space: / 3326 MB (56%);",
            "DISK OK - free space: / 3326 MB (56%);",
            "",
            [],
        ),
        ("DISK OK - free space: / 3326 MB (56%); | /=2643MB;5948;5958;0;5968", None, "", ["/"]),
        (
            "DISK OK - free space: / 3326 MB (56%);\n/ 15272 MB (77%);\n/boot 68 MB (69%);",
            "DISK OK - free space: / 3326 MB (56%);",
            "/ 15272 MB (77%);\n/boot 68 MB (69%);",
            [],
        ),
        ("OK\nlong line\n| a=1\nb=2", "OK", "long line", ["a", "b"]),
        ("OK\r\nlong\r\n| a=1", "OK", "long", ["a"]),
        ("", "", "", []),
        ("| a=1", "", "", ["a"]),
    ],
)
def test_guideline_output_shapes(
    text: str, output: str | None, long_output: str, labels: list[str]
) -> None:
    parsed = parse_output(text)
    if output is not None:
        assert parsed.output == output
    assert parsed.long_output == long_output
    assert [metric.label for metric in parsed.metrics] == labels


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("time=0.1s", m("time", 0.1, "s")),
        ("time=10ms", m("time", 10, "ms")),
        ("time=250us", m("time", 250, "us")),
        ("pl=20%", m("pl", 20, "%")),
        ("mem=1B", m("mem", 1, "B")),
        ("mem=1KB", m("mem", 1, "KB")),
        ("mem=1MB", m("mem", 1, "MB")),
        ("mem=1GB", m("mem", 1, "GB")),
        ("mem=1TB", m("mem", 1, "TB")),
        ("packets=123456c", m("packets", 123456, "c")),
        ("users=3", m("users", 3)),
        ("temp=-4.5", m("temp", -4.5)),
        ("x=.5", m("x", 0.5)),
        ("x=1e-3s", m("x", 0.001, "s")),
        ("'a b'=1", m("a b", 1)),
        ("'it''s'=2", m("it's", 2)),
        ("'a=b'=3", m("a=b", 3)),
        ("''''=4", m("'", 4)),
        ("a=1;2;3;4;5", m("a", 1, warn="2", crit="3", min=4, max=5)),
        ("a=1;;;;", m("a", 1)),
        ("a=1;~:10;@10:20", m("a", 1, warn="~:10", crit="@10:20")),
        ("a=1;10:;:20", m("a", 1, warn="10:", crit=":20")),
        ("a=1;5.000;10.000;0;", m("a", 1, warn="5.000", crit="10.000", min=0)),
    ],
)
def test_guideline_items(text: str, expected: Metric) -> None:
    assert parse_perfdata(text) == (expected,)


def test_guideline_uoms_are_the_listed_ones() -> None:
    assert {"", "s", "ms", "us", "%", "B", "KB", "MB", "GB", "TB", "c"} == GUIDELINE_UOMS


# --- real plugin output -------------------------------------------------------------------

REAL = {
    "check_dummy": (
        "OK: hello | a=1;2;3;0;4",
        "OK: hello",
        [m("a", 1, warn="2", crit="3", min=0, max=4)],
    ),
    "check_tcp": (
        "TCP OK - 0.000 second response time on 127.0.0.1 port 18080"
        "|time=0.000133s;;;0.000000;10.000000",
        "TCP OK - 0.000 second response time on 127.0.0.1 port 18080",
        [m("time", 0.000133, "s", min=0, max=10)],
    ),
    "check_http": (
        "HTTP OK: HTTP/1.0 200 OK - 2049 bytes in 0.001 second response time "
        "|time=0.001363s;;;0.000000;10.000000 size=2049B;;;0;",
        "HTTP OK: HTTP/1.0 200 OK - 2049 bytes in 0.001 second response time",
        [m("time", 0.001363, "s", min=0, max=10), m("size", 2049, "B", min=0)],
    ),
    "check_disk": (
        "DISK OK - free space: / 80236MiB (77% inode=97%); /dev/shm 24151MiB (99% inode=99%);"
        "| /=24809308160B;216442024755;243497277849;0;270552530944 "
        "/dev/shm=1048576B;20260166041;22792686796;0;25325207552",
        "DISK OK - free space: / 80236MiB (77% inode=97%); /dev/shm 24151MiB (99% inode=99%);",
        [
            m(
                "/",
                24809308160,
                "B",
                warn="216442024755",
                crit="243497277849",
                min=0,
                max=270552530944,
            ),
            m(
                "/dev/shm",
                1048576,
                "B",
                warn="20260166041",
                crit="22792686796",
                min=0,
                max=25325207552,
            ),
        ],
    ),
    "check_load": (
        "LOAD OK - total load average: 0.89, 0.91, 0.81|load1=0.890;5.000;10.000;0; "
        "load5=0.910;4.000;8.000;0; load15=0.810;3.000;6.000;0; ",
        "LOAD OK - total load average: 0.89, 0.91, 0.81",
        [
            m("load1", 0.89, warn="5.000", crit="10.000", min=0),
            m("load5", 0.91, warn="4.000", crit="8.000", min=0),
            m("load15", 0.81, warn="3.000", crit="6.000", min=0),
        ],
    ),
    "check_ping": (
        "PING OK - Packet loss = 0%, RTA = 0.05 ms|rta=0.055000ms;100.000000;200.000000;0.000000 "
        "pl=0%;20;50;0;",
        "PING OK - Packet loss = 0%, RTA = 0.05 ms",
        [
            m("rta", 0.055, "ms", warn="100.000000", crit="200.000000", min=0),
            m("pl", 0, "%", warn="20", crit="50", min=0),
        ],
    ),
    "check_swap": (
        "SWAP CRITICAL - 0% free (0MB out of 0MB) - Swap is either disabled, not present, or of "
        "zero size. |swap=0B;0;0;0;0",
        None,
        [m("swap", 0, "B", warn="0", crit="0", min=0, max=0)],
    ),
    "check_tcp refused": (
        "connect to address 127.0.0.1 and port 18081: Connection refused",
        "connect to address 127.0.0.1 and port 18081: Connection refused",
        [],
    ),
}


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_plugin_output(name: str) -> None:
    text, output, metrics = REAL[name]
    parsed = parse_output(text + "\n")
    if output is not None:
        assert parsed.output == output
    assert parsed.long_output == ""
    assert list(parsed.metrics) == metrics


# --- tolerance ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "labels"),
    [
        ("a=U", []),  # the guidelines' "unknown" value
        ("a=U;1;2 b=1", ["b"]),
        ("=1 b=2", ["b"]),
        ("a= b=2", ["b"]),
        ("a b=2", ["b"]),  # "a" strayed into perfdata; "b=2" still counts
        ("free space=10", ["space"]),
        ("a=1x2 b=1", ["b"]),
        ("a=1,5 b=1", ["b"]),
        ("a=1.2.3 b=1", ["b"]),
        ("a=abc b=1", ["b"]),
        ("a=1;2;3;4;5;6 b=1", ["b"]),
        ("a=nan b=inf c=1", ["c"]),
        ("'unterminated=1 b=2", ["b"]),
        ("'x' =1 b=2", ["b"]),
        ("'x'y=1 b=2", ["b"]),
        ("just some text", []),
        ("a==1 b=2", ["b"]),
        ("   ", []),
        (";;;", []),
        ("'", []),
        ("a=1;;;;\tb=2\nc=3", ["a", "b", "c"]),
    ],
)
def test_malformed_items_are_skipped(text: str, labels: list[str]) -> None:
    assert [metric.label for metric in parse_perfdata(text)] == labels


def test_invalid_ranges_and_bounds_become_none_but_keep_the_value() -> None:
    (metric,) = parse_perfdata("a=1;10:5;x;min;1e999")
    assert metric == m("a", 1)


def test_units_outside_the_guidelines_are_kept_as_given() -> None:
    assert parse_perfdata("d=80236MiB t=21.5C r=10B/s u=3µs") == (
        m("d", 80236, "MiB"),
        m("t", 21.5, "C"),
        m("r", 10, "B/s"),
        m("u", 3, "µs"),
    )


@given(st.text(max_size=200))
def test_never_raises(text: str) -> None:
    parse_output(text)
    for metric in parse_perfdata(text):
        assert metric.label


# --- formatting ---------------------------------------------------------------------------

labels = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1)
numbers = st.floats(allow_nan=False, allow_infinity=False, width=32)


@given(
    label=labels,
    value=numbers,
    uom=st.sampled_from(sorted(GUIDELINE_UOMS)),
    warn=st.sampled_from([None, "10", "10:", "~:10", "@1:2"]),
    low=st.none() | numbers,
)
def test_format_then_parse_round_trips(
    label: str, value: float, uom: str, warn: str | None, low: float | None
) -> None:
    metric = Metric(label=label, value=value, uom=uom, warn=warn, min=low)
    assert parse_perfdata(format_perfdata([metric])) == (metric,)


def test_format_quotes_only_when_needed() -> None:
    text = format_perfdata([m("a b", 1, "s", crit="5"), m("it's", 2.5, max=10), m("c", -1)])
    assert text == "'a b'=1s;;5 'it''s'=2.5;;;;10 c=-1"


def test_a_trailing_separator_keeps_the_metric_as_nagios_and_icinga_do() -> None:
    assert parse_perfdata("a=1;2;3;0;100;") == (
        Metric(label="a", value=1, warn="2", crit="3", min=0, max=100),
    )
    assert parse_perfdata("b=5s;;;") == (Metric(label="b", value=5, uom="s"),)


def test_every_dropped_item_says_why() -> None:
    parsed = parse_output("OK | a=1;2;3;4;5;6 b=U c=x1 'd=2 stray e=3")
    assert parsed.metrics == (Metric(label="e", value=3),)
    reasons = dict(parsed.dropped)
    assert reasons["a=1;2;3;4;5;6"] == "6 fields, at most 5 (value;warn;crit;min;max)"
    assert reasons["b=U"] == "value U (the plugin could not measure it)"
    assert reasons["c=x1"] == "value 'x1' is not a number with a unit"
    assert "not label=value" in reasons.values()
    assert parse_output("OK | a=1").dropped == ()
