"""How long a failing source waits before the next attempt.

Exponential, so a source that is down for hours is not hammered; capped, so recovery is
noticed within ``cap`` seconds; jittered, so many managers (or many sources) that failed
together do not retry in lockstep and knock the server over again as it comes back.
"""

from __future__ import annotations

import random

#: Beyond this many doublings every sane ``base`` has long passed every sane ``cap``.
_MAX_DOUBLINGS = 1000


def backoff_ceiling(failures: int, *, base: float, cap: float) -> float:
    """The delay before jitter after ``failures`` failures in a row: ``base * 2**(n-1)``, capped."""
    if failures < 1:
        raise ValueError(f"failures must be at least 1, got {failures}")
    return min(cap, base * 2.0 ** min(failures - 1, _MAX_DOUBLINGS))


def backoff_delay(failures: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Seconds to wait after ``failures`` consecutive failures ("equal jitter").

    Half of the ceiling is fixed and half is random. The fixed half guarantees the delay
    still grows (full jitter may pick ~0 and retry at once); the random half spreads
    retries out. The result lies in ``[ceiling / 2, ceiling]`` and never exceeds ``cap``.
    """
    ceiling = backoff_ceiling(failures, base=base, cap=cap)
    half = ceiling / 2
    return half + rng.uniform(0.0, half)
