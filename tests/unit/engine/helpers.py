"""Builders shared by the engine tests: check records, outcomes and a fake-clock driver."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from watchkeeper.document.normalize import CheckRecord, check_key, spec_hash
from watchkeeper.engine import DispatchDecision, Engine, Step
from watchkeeper.results import CheckOutcome, CheckState

#: A start time well away from zero, as a real epoch clock would be.
T0 = 1_700_000_000.0


def record(
    host: str,
    service: str | None = "svc",
    *,
    zone: str = "dc1",
    interval: float = 60.0,
    retry_interval: float = 15.0,
    max_attempts: int = 3,
    timeout: float = 10.0,
    parents: Sequence[str] = (),
    command: str = "check_it",
    kind: str = "plugin",
) -> CheckRecord:
    spec: dict[str, Any] = {
        "check": {"kind": kind, "command": command},
        "interval": interval,
        "retry_interval": retry_interval,
        "max_attempts": max_attempts,
        "timeout": timeout,
        "host": host,
        "service": service,
        "zone": zone,
        "parents": list(parents),
    }
    return CheckRecord(
        key=check_key(host, service),
        host=host,
        service=service,
        zone=zone,
        hash=spec_hash(spec),
        spec=spec,
    )


def outcome(state: CheckState, output: str | None = None) -> CheckOutcome:
    return CheckOutcome(state=state, output=output if output is not None else state.name)


OK = outcome(CheckState.OK)
WARN = outcome(CheckState.WARNING)
CRIT = outcome(CheckState.CRITICAL)
UNKNOWN = outcome(CheckState.UNKNOWN)


def started(records: Sequence[CheckRecord], *, zones: Sequence[str] = ("dc1",)) -> Engine:
    """An engine loaded at T0 with workers in ``zones``."""
    engine = Engine()
    engine.load(records, T0)
    for zone in zones:
        engine.zone_online(zone, T0)
    return engine


def run_until(engine: Engine, key: str, start: float, *, step: float = 1.0) -> DispatchDecision:
    """Tick a fake clock from ``start`` until ``key`` is dispatched; fail after a day."""
    now = start
    while now < start + 86_400:
        for decision in engine.tick(now).dispatch:
            if decision.key == key:
                return decision
        now += step
    raise AssertionError(f"{key} never dispatched")


def answer(
    engine: Engine, decision: DispatchDecision, result: CheckOutcome, after: float = 1.0
) -> Step:
    return engine.record_result(
        decision.key, decision.token, result, decision.dispatched_at + after
    )


class FakeWorkers:
    """Answers every dispatch at once (``delay`` later) with ``results[key]`` (default OK).

    Collects every step so tests can read dispatch times, history and statuses.
    """

    def __init__(self, engine: Engine, results: dict[str, CheckOutcome] | None = None) -> None:
        self.engine = engine
        self.results = results if results is not None else {}
        self.dispatched: list[DispatchDecision] = []
        self.steps: list[Step] = []

    def run(self, start: float, end: float, *, step: float = 1.0, delay: float = 0.5) -> float:
        now = start
        while now < end:
            tick = self.engine.tick(now)
            self.steps.append(tick)
            for decision in tick.dispatch:
                self.dispatched.append(decision)
                result = self.results.get(decision.key, OK)
                self.steps.append(
                    self.engine.record_result(decision.key, decision.token, result, now + delay)
                )
            now += step
        return now

    def changes(self, key: str) -> list[tuple[float, str, str, bool]]:
        """(at, to_state, to_type, hard) of every history entry of ``key``."""
        return [
            (c.at, c.to_state.name, c.to_type.value, c.hard)
            for s in self.steps
            for c in s.changes
            if c.key == key
        ]

    def times(self, key: str) -> list[float]:
        return [d.dispatched_at for d in self.dispatched if d.key == key]
