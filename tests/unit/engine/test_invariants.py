"""Random event sequences never dispatch a check twice at once nor grow the queues."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.engine.helpers import T0, outcome, record
from watchkeeper.document.diff import compare
from watchkeeper.engine import DispatchDecision, Engine
from watchkeeper.results import CheckState

HOSTS = [f"h{i}" for i in range(6)]

ticks = st.tuples(st.just("tick"), st.floats(0.1, 40), st.sampled_from([None, 0, 1, 3]))
answers = st.tuples(st.just("answer"), st.integers(0, 20), st.sampled_from(list(CheckState)))
zones = st.tuples(st.just("zone"), st.sampled_from(["dc1", "dmz"]), st.booleans())
imports = st.tuples(
    st.just("import"),
    st.sampled_from(HOSTS),
    st.sampled_from(["add", "remove", "interval", "command"]),
)
events = st.lists(st.one_of(ticks, answers, zones, imports), max_size=60)


def records(spec: dict[str, tuple[str, float, str]]) -> dict[str, Any]:
    out = {}
    for host, (zone, interval, command) in spec.items():
        r = record(host, zone=zone, interval=interval, retry_interval=3, timeout=2, command=command)
        out[r.key] = r
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events)
def test_no_check_is_ever_in_flight_twice(script: list[tuple[Any, ...]]) -> None:
    spec = {h: ("dc1" if i % 2 else "dmz", 10.0, "a") for i, h in enumerate(HOSTS)}
    current = records(spec)
    engine = Engine(worker_grace=5, deadline_grace=1)
    engine.load(current.values(), T0)
    engine.zone_online("dc1", T0)  # dmz starts without a worker
    now = T0
    open_: list[DispatchDecision] = []
    for event in script:
        kind = event[0]
        if kind == "tick":
            now += event[1]
            before = {k: engine.scheduler.in_flight(k) for k in engine.scheduler}
            step = engine.tick(now, limit=event[2])
            keys = [d.key for d in step.dispatch]
            assert len(keys) == len(set(keys))
            for d in step.dispatch:
                previous = before[d.key]
                assert previous is None or previous.deadline <= now
                assert engine.scheduler.in_flight(d.key) == d
                assert engine.zone_has_worker(d.zone)
            open_.extend(step.dispatch)
        elif kind == "answer" and open_:
            d = open_.pop(event[1] % len(open_))
            flying = d.key in engine.scheduler and engine.scheduler.in_flight(d.key) == d
            step = engine.record_result(d.key, d.token, outcome(event[2]), now)
            assert bool(step.statuses) == flying
        elif kind == "zone":
            if event[2]:
                engine.zone_online(event[1], now)
            else:
                engine.zone_offline(event[1], now)
        elif kind == "import":
            host, change = event[1], event[2]
            new_spec = dict(spec)
            if change == "remove":
                new_spec.pop(host, None)
            elif change == "add" or host in new_spec:
                zone, interval, command = new_spec.get(host, ("dc1", 10.0, "a"))
                if change == "interval":
                    interval = 25.0 if interval == 10.0 else 10.0
                elif change == "command":
                    command = "b" if command == "a" else "a"
                new_spec[host] = (zone, interval, command)
            new = records(new_spec)
            delta = compare(
                {k: r.hash for k, r in current.items()}, {k: r.hash for k, r in new.items()}
            )
            engine.apply_diff(delta, new, now)
            spec, current = new_spec, new
        assert set(engine.statuses) == set(engine.scheduler) == set(current)
        assert set(engine.hosts) == {r.host for r in current.values()}
        assert all(size <= 2 * len(current) + 64 for size in engine.scheduler.heap_sizes())
        for key in engine.scheduler:
            queued = engine.scheduler.next_due(key) is not None
            flying = engine.scheduler.in_flight(key) is not None
            assert queued != flying  # exactly one of the two, always
