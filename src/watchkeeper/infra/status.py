"""How a resource and a platform stand, as values: the ``infra:NAME`` check's result
and the shrink guard. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from watchkeeper.infra import repository
from watchkeeper.infra.desired import Desired
from watchkeeper.infra.planner import Plan, ResourceReport
from watchkeeper.results import CheckOutcome, CheckState, Metric


@dataclass(slots=True)
class PlatformState:
    """What the stage knows of one platform between observations."""

    next_observe: float = 0.0
    observing: int | None = None
    #: When the observation in flight is given up on, and when it was sent.
    observe_lease: float = 0.0
    observe_sent: float = 0.0
    #: When a change of this platform last ended (done or lost): an observation sent
    #: before then may not show it, so it plans nothing.
    changed_at: float = float("-inf")
    inventory: repository.Inventory | None = None
    last: Plan | None = None
    #: Failed changes in a row, and until when the breaker holds applies.
    failures: int = 0
    openings: int = 0
    breaker_until: float = 0.0
    last_error: str = ""
    #: Restrict the next plan to these resources (``infra apply --only``).
    only: frozenset[str] | None = None
    #: Why no observation is made (no worker of the zone), or empty.
    waiting: str = ""
    #: Cloud ids our own destroys took.
    destroyed: set[str] = field(default_factory=set)


def report_outcome(
    report: ResourceReport,
    state: PlatformState,
    now: float,
    pending: int = 0,
    running: int = 0,
) -> CheckOutcome:
    """The ``infra:NAME`` check's result from the resource's report and its platform."""
    counts = f"{report.converged}/{report.desired} converged"
    perf = (
        _metric("converged", report.converged),
        _metric("desired", report.desired),
        _metric("drift", len(report.drift)),
    )
    if report.unknown:
        return outcome(CheckState.UNKNOWN, f"platform {report.platform}: {report.unknown}")
    if now < state.breaker_until or state.failures:
        return outcome(
            CheckState.CRITICAL,
            f"apply failed ({state.failures} in a row): {state.last_error}; {counts}",
            perf,
        )
    if report.drift:
        return outcome(CheckState.WARNING, f"drift: {'; '.join(report.drift)}; {counts}", perf)
    waiting = f", {running} change(s) under way" if running else ""
    waiting += f", {pending} change(s) wait for an operator" if pending else ""
    return outcome(CheckState.OK, counts + waiting, perf)


def shrink_reason(old: Desired, new: Desired, states: Mapping[str, PlatformState]) -> str:
    """Why ``new`` must wait for an operator: it removes more machines from a platform
    than its ``max_destroy`` (a deleted section, a count cut to 0). Empty when it need not.
    """
    for name, platform in old.platforms.items():
        before = {s for r in old.on(name) for s in r.slots}
        after = {s for r in new.on(name) for s in r.slots}
        removed = len(before - after)
        limit = (new.platforms.get(name) or platform).limits.max_destroy
        if removed > limit:
            return (
                f"it would remove {removed} slots from platform {name}, more than its "
                f"max_destroy={limit}; confirm it (watchkeeper infra confirm-hold) to apply"
            )
    return ""


def _metric(label: str, value: float) -> Metric:
    return Metric(label=label, value=float(value))


def outcome(state: CheckState, output: str, metrics: tuple[Metric, ...] = ()) -> CheckOutcome:
    return CheckOutcome(state=state, output=output, metrics=metrics)
