"""Backoff: bounds, cap, growth, and jitter that is reproducible from a seed."""

from __future__ import annotations

import random
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watchkeeper.backoff import backoff_ceiling, backoff_delay


def test_ceiling_doubles_from_base_until_the_cap() -> None:
    ceilings = [backoff_ceiling(n, base=1.0, cap=60.0) for n in range(1, 10)]
    assert ceilings == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]


def test_a_huge_failure_count_is_capped_not_an_overflow() -> None:
    assert backoff_ceiling(10**9, base=1.0, cap=300.0) == 300.0
    assert backoff_delay(10**9, base=1.0, cap=300.0, rng=random.Random(1)) <= 300.0


@pytest.mark.parametrize("failures", [0, -1])
def test_fewer_than_one_failure_is_a_bug(failures: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        backoff_ceiling(failures, base=1.0, cap=2.0)


@given(
    failures=st.integers(min_value=1, max_value=5000),
    base=st.floats(min_value=0.001, max_value=100.0),
    extra=st.floats(min_value=0.0, max_value=10_000.0),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_delay_lies_between_half_the_ceiling_and_the_ceiling(
    failures: int, base: float, extra: float, seed: int
) -> None:
    cap = base + extra
    ceiling = backoff_ceiling(failures, base=base, cap=cap)
    delay = backoff_delay(failures, base=base, cap=cap, rng=random.Random(seed))
    assert ceiling / 2 <= delay <= ceiling <= cap


def test_bounds_never_shrink_as_failures_grow() -> None:
    ceilings = [backoff_ceiling(n, base=0.5, cap=300.0) for n in range(1, 40)]
    assert ceilings == sorted(ceilings)


def test_expected_delay_grows_like_three_quarters_of_the_ceiling() -> None:
    rng = random.Random(42)
    for failures in (1, 3, 5, 12):
        ceiling = backoff_ceiling(failures, base=1.0, cap=300.0)
        mean = statistics.fmean(
            backoff_delay(failures, base=1.0, cap=300.0, rng=rng) for _ in range(4000)
        )
        assert mean == pytest.approx(0.75 * ceiling, rel=0.02)


def test_jitter_comes_from_the_rng_and_repeats_with_its_seed() -> None:
    def run(seed: int) -> list[float]:
        rng = random.Random(seed)
        return [backoff_delay(5, base=1.0, cap=300.0, rng=rng) for _ in range(20)]

    assert run(3) == run(3)
    assert run(3) != run(4)
    assert len(set(run(3))) > 1  # jittered, not a constant
