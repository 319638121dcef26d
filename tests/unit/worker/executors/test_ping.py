"""Reading ping's summary: captured iputils output, loss, no replies, odd text."""

from __future__ import annotations

import pytest

from watchkeeper.results import CheckState, Metric
from watchkeeper.worker.executors.ping import ping_outcome

ALL_BACK = """PING 127.0.0.1 (127.0.0.1) 56(84) bytes of data.

--- 127.0.0.1 ping statistics ---
3 packets transmitted, 3 received, 0% packet loss, time 406ms
rtt min/avg/max/mdev = 0.018/0.029/0.035/0.007 ms
"""
SOME_LOST = """--- 192.0.2.1 ping statistics ---
3 packets transmitted, 1 received, 66.6667% packet loss, time 2003ms
rtt min/avg/max/mdev = 12.500/12.500/12.500/0.000 ms
"""
NONE_BACK = """--- 192.0.2.1 ping statistics ---
3 packets transmitted, 0 received, 100% packet loss, time 2040ms
"""
ERRORS = """--- 192.0.2.1 ping statistics ---
3 packets transmitted, 0 received, +3 errors, 100% packet loss, time 2003ms
pipe 3
"""
BSD = """--- 127.0.0.1 ping statistics ---
2 packets transmitted, 2 packets received, 0.0% packet loss
round-trip min/avg/max/stddev = 0.041/0.052/0.063/0.011 ms
"""


@pytest.mark.parametrize(
    ("text", "state", "output", "metrics"),
    [
        (
            ALL_BACK,
            CheckState.OK,
            "PING OK - Packet loss = 0%, RTA = 0.03 ms",
            [("rta", 0.029, "ms"), ("pl", 0.0, "%")],
        ),
        (
            SOME_LOST,
            CheckState.OK,
            "PING OK - Packet loss = 66.6667%, RTA = 12.50 ms",
            [("rta", 12.5, "ms"), ("pl", 66.6667, "%")],
        ),
        (NONE_BACK, CheckState.CRITICAL, "PING CRITICAL - Packet loss = 100%", [("pl", 100, "%")]),
        (ERRORS, CheckState.CRITICAL, "PING CRITICAL - Packet loss = 100%", [("pl", 100, "%")]),
        (
            BSD,
            CheckState.OK,
            "PING OK - Packet loss = 0%, RTA = 0.05 ms",
            [("rta", 0.052, "ms"), ("pl", 0.0, "%")],
        ),
        (
            "ping: socket: Operation not permitted",
            CheckState.UNKNOWN,
            "PING UNKNOWN - no ping summary",
            [],
        ),
    ],
)
def test_summaries(
    text: str, state: CheckState, output: str, metrics: list[tuple[str, float, str]]
) -> None:
    out = ping_outcome(text, duration=2.0)
    assert (out.state, out.output) == (state, output)
    assert [(m.label, m.value, m.uom) for m in out.metrics] == metrics
    assert out.duration == 2.0


def test_metrics_match_check_ping_bounds() -> None:
    rta, pl = ping_outcome(ALL_BACK).metrics
    assert rta == Metric(label="rta", value=0.029, uom="ms", min=0.0)
    assert pl == Metric(label="pl", value=0.0, uom="%", min=0.0, max=100.0)
