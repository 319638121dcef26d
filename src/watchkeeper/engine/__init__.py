"""The engine: when checks run and what their results mean. Pure: no I/O, no clock.

    Engine (core)  one method per event, each returning a Step (a decision value)
     ├── Scheduler (scheduler)        phases, due heap, dispatch tokens, deadlines, freshness
     ├── apply (statemachine)         soft/hard states, attempts, history entries
     ├── HostGraph (reachability)     UP / DOWN / UNREACHABLE through parents
     ├── ZoneStatus (zones)           ONLINE / WAITING / OFFLINE: can a zone's checks run
     └── zone_capacity (capacity)     a zone's workers, slots in use, no failover with one

    Observed (observed)  what one turn produced, handed to every Downstream stage

Time is a float of seconds on one clock, passed in as ``now`` to every call.
"""

from __future__ import annotations

from watchkeeper.engine.capacity import ZoneCapacity, zone_capacity
from watchkeeper.engine.core import DEFAULT_WORKER_GRACE, Engine, Step
from watchkeeper.engine.observed import CheckResult, Downstream, Observed
from watchkeeper.engine.reachability import (
    HostGraph,
    HostStateChange,
    HostStatus,
    host_transition,
    raw_host_state,
    resolve,
)
from watchkeeper.engine.scheduler import (
    DEFAULT_DEADLINE_GRACE,
    DispatchDecision,
    Scheduler,
    Timing,
    next_slot,
    spread,
)
from watchkeeper.engine.statemachine import CheckStatus, StateChange, Transition, apply
from watchkeeper.engine.states import HostState, StateType
from watchkeeper.engine.zones import ZoneHealth, ZoneStatus

__all__ = [
    "DEFAULT_DEADLINE_GRACE",
    "DEFAULT_WORKER_GRACE",
    "CheckResult",
    "CheckStatus",
    "DispatchDecision",
    "Downstream",
    "Engine",
    "HostGraph",
    "HostState",
    "HostStateChange",
    "HostStatus",
    "Observed",
    "Scheduler",
    "StateChange",
    "StateType",
    "Step",
    "Timing",
    "Transition",
    "ZoneCapacity",
    "ZoneHealth",
    "ZoneStatus",
    "apply",
    "host_transition",
    "next_slot",
    "raw_host_state",
    "resolve",
    "spread",
    "zone_capacity",
]
