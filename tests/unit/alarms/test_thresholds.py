"""Thresholds on metrics: ranges, modes, consecutive results and no data."""

from __future__ import annotations

from typing import Any

import pytest

from watchkeeper.alarms.thresholds import SignalKind, ThresholdInterpreter
from watchkeeper.document.normalize import CheckRecord, spec_hash
from watchkeeper.results import CheckOutcome, CheckState, Metric

T0 = 1_700_000_000.0


def rec(
    thresholds: dict[str, Any], *, mode: str = "complement", key: str = "web1!http"
) -> CheckRecord:
    host, _, service = key.partition("!")
    spec = {"thresholds": thresholds, "threshold_mode": mode, "host": host, "service": service}
    return CheckRecord(
        key=key, host=host, service=service or None, zone="z", hash=spec_hash(spec), spec=spec
    )


def out(state: CheckState = CheckState.OK, **values: float) -> CheckOutcome:
    metrics = tuple(Metric(label=k, value=v, uom="s") for k, v in values.items())
    return CheckOutcome(state=state, output=f"HTTP {state.name}", metrics=metrics)


TIME = {"time": {"warning": "0.5", "critical": "2"}}


@pytest.mark.parametrize(
    ("value", "state", "reason"),
    [
        (0.1, CheckState.OK, None),
        (1.0, CheckState.WARNING, "time=1s above warning 0.5"),
        (2.5, CheckState.CRITICAL, "time=2.5s above critical 2"),
    ],
)
def test_complement_takes_the_worse_and_says_why(
    value: float, state: CheckState, reason: str | None
) -> None:
    interpreter = ThresholdInterpreter()
    result = interpreter.interpret(rec(TIME), out(time=value), T0)
    assert result.state is state
    if reason is None:
        assert result.output == "HTTP OK"
    else:
        assert result.output == f"HTTP OK [{reason}]"


def test_complement_keeps_a_worse_plugin_state() -> None:
    result = ThresholdInterpreter().interpret(rec(TIME), out(CheckState.CRITICAL, time=1.0), T0)
    assert result.state is CheckState.CRITICAL


def test_override_lets_thresholds_alone_decide_when_a_metric_is_present() -> None:
    interpreter = ThresholdInterpreter()
    record = rec(TIME, mode="override")
    calmed = interpreter.interpret(record, out(CheckState.CRITICAL, time=0.1), T0)
    assert calmed.state is CheckState.OK
    assert "override" in calmed.output
    raised = interpreter.interpret(record, out(CheckState.OK, time=1.0), T0)
    assert raised.state is CheckState.WARNING
    # No thresholded metric in the result: the plugin decides.
    absent = interpreter.interpret(record, out(CheckState.CRITICAL, size=3), T0)
    assert absent.state is CheckState.CRITICAL and absent.output == "HTTP CRITICAL"


def test_ranges_below_and_inside() -> None:
    interpreter = ThresholdInterpreter()
    below = rec({"free": {"critical": "10:"}})
    assert interpreter.interpret(below, out(free=5), T0).output.endswith("below critical 10:]")
    inside = rec({"load": {"warning": "@1:2"}}, key="h!load")
    result = interpreter.interpret(inside, out(load=1.5), T0)
    assert result.state is CheckState.WARNING and "inside warning @1:2" in result.output


def test_no_thresholds_pass_the_outcome_through_unchanged() -> None:
    outcome = out(CheckState.WARNING, time=9)
    assert ThresholdInterpreter().interpret(rec({}), outcome, T0) is outcome


def test_consecutive_counts_only_after_n_results_in_a_row() -> None:
    interpreter = ThresholdInterpreter()
    record = rec({"time": {"critical": "2", "consecutive": 3}})
    states = [
        interpreter.interpret(record, out(time=v), T0 + i).state
        for i, v in enumerate([3, 3, 1, 3, 3, 3, 3])
    ]
    ok, crit = CheckState.OK, CheckState.CRITICAL
    assert states == [ok, ok, ok, ok, ok, crit, crit]
    signals = interpreter.take_signals()
    assert [(s.kind, s.state, s.at) for s in signals] == [(SignalKind.BREACH, crit, T0 + 5)]
    interpreter.interpret(record, out(time=1), T0 + 7)
    assert [s.kind for s in interpreter.take_signals()] == [SignalKind.CLEAR]
    assert interpreter.consecutive("web1!http", "time") == 0


def test_a_result_without_the_metric_neither_counts_nor_resets() -> None:
    interpreter = ThresholdInterpreter()
    record = rec({"time": {"critical": "2", "consecutive": 2}})
    interpreter.interpret(record, out(time=3), T0)
    interpreter.interpret(record, out(), T0 + 1)
    assert interpreter.interpret(record, out(time=3), T0 + 2).state is CheckState.CRITICAL


def test_critical_values_count_as_warning_until_their_own_run_is_long_enough() -> None:
    interpreter = ThresholdInterpreter()
    record = rec({"time": {"warning": "1", "critical": "2", "consecutive": 2}})
    states = [interpreter.interpret(record, out(time=v), T0).state for v in (1.5, 3, 3)]
    assert states == [CheckState.OK, CheckState.WARNING, CheckState.CRITICAL]
    kinds = [(s.kind, s.state) for s in interpreter.take_signals()]
    assert kinds == [
        (SignalKind.BREACH, CheckState.WARNING),
        (SignalKind.BREACH, CheckState.CRITICAL),
    ]


def test_no_data_after_a_value_then_silence() -> None:
    interpreter = ThresholdInterpreter()
    record = rec({"time": {"critical": "2", "no_data": 300}})
    assert interpreter.tick(T0 + 1000) == []  # never had a value: pending does not count
    interpreter.interpret(record, out(time=1), T0)
    interpreter.interpret(record, out(), T0 + 60)  # a result without it
    assert interpreter.tick(T0 + 299) == []
    (signal,) = interpreter.tick(T0 + 300)
    assert (signal.kind, signal.state, signal.metric) == (
        SignalKind.NO_DATA,
        CheckState.UNKNOWN,
        "time",
    )
    assert signal.reason == "no value of time for 300s"
    assert interpreter.tick(T0 + 400) == []  # once
    interpreter.interpret(record, out(time=1), T0 + 500)
    assert [s.kind for s in interpreter.take_signals()] == [SignalKind.CLEAR]


def test_removed_threshold_clears_and_vanished_checks_are_forgotten() -> None:
    interpreter = ThresholdInterpreter()
    interpreter.interpret(rec(TIME), out(time=3), T0)
    assert [s.kind for s in interpreter.take_signals()] == [SignalKind.BREACH]
    interpreter.interpret(rec({}), out(time=3), T0 + 1)
    (clear,) = interpreter.take_signals()
    assert clear.kind is SignalKind.CLEAR and "no threshold" in clear.reason
    interpreter.interpret(rec({"time": {"critical": "2", "consecutive": 2}}), out(time=3), T0)
    interpreter.retain([])
    assert interpreter.consecutive("web1!http", "time") == 0


def test_a_bad_spec_never_breaks_the_runner() -> None:
    record = rec({"time": {"critical": "2", "consecutive": "many"}})
    outcome = out(time=3)
    assert ThresholdInterpreter().interpret(record, outcome, T0) is outcome
