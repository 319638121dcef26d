"""`Tally` keeps `summarize`'s line through any sequence of changes, at a cost per change
that does not grow with the number of checks."""

from __future__ import annotations

import heapq
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchkeeper.engine.statemachine import CheckStatus
from watchkeeper.manager import summary
from watchkeeper.manager.summary import Tally, summarize
from watchkeeper.results import CheckState

KEYS = [f"h{i}!s" for i in range(12)]
change = st.tuples(
    st.sampled_from(KEYS),
    st.none() | st.tuples(st.sampled_from(list(CheckState)), st.booleans(), st.booleans()),
)


def status(key: str, state: CheckState, pending: bool, not_run: bool) -> CheckStatus:
    return CheckStatus.initial(key, 0.0).evolve(
        state=state, pending=pending, not_run="no worker" if not_run else ""
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(change, max_size=60), st.integers(min_value=1, max_value=4))
def test_the_tally_says_what_summarize_says_after_every_change(
    changes: list[tuple[str, tuple[CheckState, bool, bool] | None]], show: int
) -> None:
    statuses: dict[str, CheckStatus] = {}
    tally = Tally(show=show)
    for key, new in changes:
        if new is None:
            statuses.pop(key, None)
            tally.remove(key)
        else:
            statuses[key] = status(key, *new)
            tally.set(statuses[key])
        assert tally.line() == summarize(statuses, show=show)
    tally.reset(statuses.values())
    assert tally.line() == summarize(statuses, show=show)


def heap_operations(checks: int, monkeypatch: pytest.MonkeyPatch) -> int:
    """Heap pushes and pops for 200 results after ``checks`` problem statuses are set."""
    tally = Tally()
    for i in range(checks):  # every check a problem: the old summary's worst case
        tally.set(status(f"h{i:05}!s", CheckState.UNKNOWN, False, True))
    counted = 0

    def counting(operation: Callable[..., object]) -> Callable[..., object]:
        def count(*args: object) -> object:
            nonlocal counted
            counted += 1
            return operation(*args)

        return count

    with monkeypatch.context() as patch:
        patch.setattr(summary.heapq, "heappush", counting(heapq.heappush))
        patch.setattr(summary.heapq, "heappop", counting(heapq.heappop))
        for i in range(200):
            key = f"h{(i * 37) % checks:05}!s"
            state = CheckState.CRITICAL if i % 2 else CheckState.UNKNOWN
            tally.set(status(key, state, False, False))
            tally.line()
    return counted


def test_a_result_costs_the_same_with_100_and_10000_checks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    small = heap_operations(100, monkeypatch)
    large = heap_operations(10_000, monkeypatch)
    assert small > 0 and large <= small * 1.2 + 50, (small, large)
