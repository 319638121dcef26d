"""The document's thresholds on metrics: a check's state from its perfdata, and metric alarms.

    worker outcome ──▶ ThresholdInterpreter.interpret ──▶ outcome the engine records
                              │ (per check key and metric: consecutive counters,
                              │  last value time, alarmed state)
                              └──▶ MetricSignal (BREACH / CLEAR / NO_DATA) ──▶ AlarmBook

A threshold is a Nagios range (`parse_range`) per level: a value outside ``critical``
gives CRITICAL, else outside ``warning`` gives WARNING. ``consecutive: N`` is the
"insufficient value" rule: a level counts only after N results in a row outside its range
(a value inside resets the count; a result without the metric leaves it as it is).
``threshold_mode`` "complement" takes the worse of the plugin's state and the thresholds';
"override" lets the thresholds alone decide whenever a thresholded metric is present.
``no_data: S`` raises a NO_DATA signal when a metric that had a value has had none for S
seconds; a check that never reported one does not count.

The interpreter is pure (the clock is passed in) and cheap: it runs inside the engine loop
as the runner's ``interpret`` hook, so it must never raise: a bug is logged and the
worker's outcome passes through unchanged.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from watchkeeper.document.normalize import CheckRecord
from watchkeeper.document.ranges import Range, parse_range
from watchkeeper.results import CheckOutcome, CheckState, Metric

logger = logging.getLogger(__name__)

#: A metric of a check: (check key, metric label).
MetricKey = tuple[str, str]


class SignalKind(enum.Enum):
    """What happened to one metric of one check."""

    #: A level now counts (after ``consecutive`` results), or the counted level changed.
    BREACH = "breach"
    #: The metric is back inside its ranges (or its threshold went away, or data is back).
    CLEAR = "clear"
    #: The metric had a value and has had none for ``no_data`` seconds.
    NO_DATA = "no_data"


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricSignal:
    """A metric alarm's news, for the alarm book: open, change or resolve (key, metric)."""

    kind: SignalKind
    key: str
    metric: str
    at: float
    #: WARNING or CRITICAL for a breach, UNKNOWN for no data, OK for a clear.
    state: CheckState
    value: float | None = None
    #: ``time=2.5s above critical 2``, ``no value of time for 300s``.
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Level:
    """One thresholded metric's verdict on one value: the state, and why."""

    state: CheckState
    reason: str = ""


def evaluate(metric: Metric, warning: Range | None, critical: Range | None) -> Level:
    """The raw level of one value (no ``consecutive``): CRITICAL before WARNING before OK."""
    for state, name, rng in (
        (CheckState.CRITICAL, "critical", critical),
        (CheckState.WARNING, "warning", warning),
    ):
        if rng is not None and rng.alerts(metric.value):
            return Level(
                state=state, reason=f"{_shown(metric)} {_where(metric.value, rng)} {name} {rng}"
            )
    return Level(state=CheckState.OK)


def combine(plugin: CheckState, thresholds: CheckState | None, mode: str) -> CheckState:
    """The outcome's state: ``thresholds`` is None when no thresholded metric was present."""
    if thresholds is None:
        return plugin
    if mode == "override":
        return thresholds
    return worse(plugin, thresholds)


def worse(a: CheckState, b: CheckState) -> CheckState:
    return a if a.severity >= b.severity else b


def _shown(metric: Metric) -> str:
    return f"{metric.label}={metric.value:g}{metric.uom}"


def _where(value: float, rng: Range) -> str:
    if rng.inside:
        return "inside"
    return "below" if value < rng.start else "above"


@dataclass(slots=True)
class _Track:
    """What the interpreter remembers of one (check key, metric)."""

    #: Results in a row outside the warning range (or the critical one), and the critical.
    warn_run: int = 0
    crit_run: int = 0
    #: The state last reported by a signal (OK: no open metric alarm from us).
    alarmed: CheckState = CheckState.OK
    #: When the metric last had a value; None until it has had one.
    seen: float | None = None
    #: ``no_data`` seconds from the spec, None when not set.
    no_data: float | None = None
    missing: bool = False


@dataclass(frozen=True, slots=True)
class _Rule:
    warning: Range | None
    critical: Range | None
    consecutive: int
    no_data: float | None


class ThresholdInterpreter:
    """Applies ``spec["thresholds"]`` to outcomes and keeps the metric alarm signals.

    Use the bound method `interpret` as the runner's ``interpret=`` hook; `take_signals`
    drains what results produced, `tick` returns the no-data signals due at ``now``.
    """

    def __init__(self) -> None:
        self._tracks: dict[MetricKey, _Track] = {}
        self._by_key: dict[str, set[str]] = {}
        self._signals: list[MetricSignal] = []
        #: Check key -> (the spec's thresholds, parsed): parsed again only when it changes.
        self._rules: dict[str, tuple[object, dict[str, _Rule]]] = {}

    # --- the runner's hook ------------------------------------------------------------------

    def interpret(self, record: CheckRecord, outcome: CheckOutcome, now: float) -> CheckOutcome:
        """The outcome the engine records: the worker's, with the thresholds applied."""
        try:
            return self._interpret(record, outcome, now)
        except Exception:
            logger.exception(
                "thresholds of %s could not be applied; the plugin's state stands",
                record.key,
                extra={"action": "thresholds_failed", "check": record.key},
            )
            return outcome

    __call__ = interpret

    def take_signals(self) -> list[MetricSignal]:
        """The signals results produced since the last call, in order."""
        signals, self._signals = self._signals, []
        return signals

    def tick(self, now: float) -> list[MetricSignal]:
        """NO_DATA signals for metrics silent for their ``no_data`` seconds (each once)."""
        found: list[MetricSignal] = []
        for (key, metric), track in self._tracks.items():
            if track.no_data is None or track.seen is None or track.missing:
                continue
            if now - track.seen >= track.no_data:
                track.missing = True
                track.alarmed = CheckState.UNKNOWN
                track.warn_run = track.crit_run = 0
                found.append(
                    MetricSignal(
                        kind=SignalKind.NO_DATA,
                        key=key,
                        metric=metric,
                        at=now,
                        state=CheckState.UNKNOWN,
                        reason=f"no value of {metric} for {track.no_data:g}s",
                    )
                )
        return found

    def forget(self, keys: Iterable[str]) -> None:
        """Drop what is known of checks that are gone (no signal: their alarms go with them)."""
        for key in keys:
            for metric in self._by_key.pop(key, ()):
                self._tracks.pop((key, metric), None)
            self._rules.pop(key, None)

    def retain(self, keys: Iterable[str]) -> None:
        """Forget every check not in ``keys`` (after an import: the running checks)."""
        keep = set(keys)
        self.forget([key for key in self._by_key if key not in keep])

    def consecutive(self, key: str, metric: str) -> int:
        """Results in a row outside the warning (or critical) range, for status pages."""
        track = self._tracks.get((key, metric))
        return 0 if track is None else track.warn_run

    # --- the work ---------------------------------------------------------------------------

    def _interpret(self, record: CheckRecord, outcome: CheckOutcome, now: float) -> CheckOutcome:
        rules = self._rules_of(record)
        self._drop_unthresholded(record.key, rules.keys(), now)
        if not rules:
            return outcome
        values = {metric.label: metric for metric in outcome.metrics}
        state: CheckState | None = None
        reasons: list[str] = []
        for label, rule in rules.items():
            track = self._track(record.key, label)
            track.no_data = rule.no_data
            metric = values.get(label)
            if metric is None:
                continue
            level = self._count(record.key, label, track, rule, metric, now)
            state = level.state if state is None else worse(state, level.state)
            if level.reason:
                reasons.append(level.reason)
        mode = str(record.spec.get("threshold_mode") or "complement")
        final = combine(outcome.state, state, mode)
        if final is outcome.state and not reasons:
            return outcome
        if not reasons and state is not None:
            reasons.append(f"thresholds OK, override the plugin's {outcome.state.name}")
        text = " [" + ", ".join(reasons) + "]"
        output = (outcome.output + text) if outcome.output else text.strip(" []")
        return dataclasses.replace(outcome, state=final, output=output)

    def _count(
        self, key: str, label: str, track: _Track, rule: _Rule, metric: Metric, now: float
    ) -> Level:
        """Fold one value into the counters; the level that counts now, with a signal."""
        raw = evaluate(metric, rule.warning, rule.critical)
        track.seen = now
        track.missing = False
        if raw.state is CheckState.OK:
            track.warn_run = track.crit_run = 0
        else:
            track.warn_run += 1
            track.crit_run = track.crit_run + 1 if raw.state is CheckState.CRITICAL else 0
        if track.crit_run >= rule.consecutive:
            counted = raw
        elif track.warn_run >= rule.consecutive:
            # A critical value whose run is still short counts as far as its warning range.
            counted = evaluate(metric, rule.warning, None)
        else:
            counted = Level(state=CheckState.OK)
        if counted.state is not track.alarmed:
            kind = SignalKind.CLEAR if counted.state is CheckState.OK else SignalKind.BREACH
            track.alarmed = counted.state
            self._signals.append(
                MetricSignal(
                    kind=kind,
                    key=key,
                    metric=label,
                    at=now,
                    state=counted.state,
                    value=metric.value,
                    reason=counted.reason or f"{_shown(metric)} within its thresholds",
                )
            )
        return counted

    def _track(self, key: str, label: str) -> _Track:
        found = self._tracks.get((key, label))
        if found is None:
            found = self._tracks[(key, label)] = _Track()
            self._by_key.setdefault(key, set()).add(label)
        return found

    def _drop_unthresholded(self, key: str, labels: Iterable[str], now: float) -> None:
        """A threshold removed by an import: clear its alarm, forget its counters."""
        known = self._by_key.get(key)
        if not known:
            return
        for label in known - set(labels):
            track = self._tracks.pop((key, label))
            known.discard(label)
            if track.alarmed is not CheckState.OK:
                self._signals.append(
                    MetricSignal(
                        kind=SignalKind.CLEAR,
                        key=key,
                        metric=label,
                        at=now,
                        state=CheckState.OK,
                        reason=f"{label} has no threshold any more",
                    )
                )
        if not known:
            del self._by_key[key]

    def _rules_of(self, record: CheckRecord) -> Mapping[str, _Rule]:
        raw = record.spec.get("thresholds") or {}
        cached = self._rules.get(record.key)
        if cached is not None and (cached[0] is raw or cached[0] == raw):
            return cached[1]
        rules = _parse_rules(raw)
        self._rules[record.key] = (raw, rules)
        return rules


def _parse_rules(raw: Mapping[str, Any]) -> dict[str, _Rule]:
    """The thresholds of one spec, parsed; a bad range is skipped (validation refuses them)."""
    rules: dict[str, _Rule] = {}
    for label, spec in raw.items():
        if not isinstance(spec, Mapping):
            continue
        try:
            warning = _range(spec.get("warning"))
            critical = _range(spec.get("critical"))
        except ValueError:
            continue
        no_data = spec.get("no_data")
        rules[label] = _Rule(
            warning=warning,
            critical=critical,
            consecutive=max(1, int(spec.get("consecutive") or 1)),
            no_data=None if no_data is None else float(no_data),
        )
    return rules


def _range(text: object) -> Range | None:
    return None if text is None else parse_range(str(text))
