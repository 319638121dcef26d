"""Nagios flap detection: weighted percent state change with hysteresis."""

from __future__ import annotations

import pytest

from watchkeeper.alarms.flapping import (
    FlapChange,
    FlapDetector,
    FlapSettings,
    percent_state_change,
)


def test_steady_history_is_zero_percent() -> None:
    assert percent_state_change([0] * 21) == 0.0
    assert percent_state_change([]) == 0.0


def test_alternating_history_is_one_hundred_percent() -> None:
    assert percent_state_change([0, 2] * 10 + [0]) == pytest.approx(100.0)


def test_recent_changes_weigh_more_than_old_ones() -> None:
    oldest = [2] + [0] * 20  # one change, between the two oldest entries: weight 0.75
    newest = [0] * 20 + [2]  # one change, between the two newest: weight 1.25
    assert percent_state_change(oldest) == pytest.approx(0.75 * 100 / 20)
    assert percent_state_change(newest) == pytest.approx(1.25 * 100 / 20)


def test_short_history_is_padded_with_its_first_state() -> None:
    assert percent_state_change([0, 2]) == percent_state_change([0] * 20 + [2])


def test_starts_at_high_and_stops_at_low() -> None:
    detector = FlapDetector(FlapSettings(low=25, high=30))
    percents = []
    changes = []
    for state in [0, 2] * 4:
        changes.append(detector.record(state))
        percents.append(detector.percent)
    started_at = changes.index(FlapChange.START)
    assert detector.flapping
    assert percents[started_at] >= 30 > percents[started_at - 1]
    assert changes[:started_at] == [None] * started_at
    stops = [detector.record(0) for _ in range(21)]
    assert stops.count(FlapChange.STOP) == 1 and not detector.flapping


def test_between_thresholds_nothing_changes() -> None:
    detector = FlapDetector(FlapSettings(low=1, high=99))
    assert all(detector.record(s) is None for s in [0, 2] * 5)
    assert not detector.flapping and 1 < detector.percent < 99


def test_disabled_never_flaps_and_disabling_stops() -> None:
    detector = FlapDetector(FlapSettings.from_spec({"enabled": False}))
    assert all(detector.record(s) is None for s in [0, 2] * 10)
    enabled = FlapDetector()
    for s in [0, 2] * 5:
        enabled.record(s)
    assert enabled.flapping
    assert enabled.configure(FlapSettings(enabled=False)) is FlapChange.STOP
