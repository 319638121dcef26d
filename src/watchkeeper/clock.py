"""The wall clock, injected wherever time matters so tests can control it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """The default clock: aware UTC."""
    return datetime.now(UTC)


def from_epoch(epoch: float) -> datetime:
    """Epoch seconds (the engine's and the queue's time) as an aware UTC timestamp."""
    return datetime.fromtimestamp(epoch, UTC)


def to_epoch(value: datetime | None) -> float | None:
    """An aware timestamp as epoch seconds; None stays None."""
    return None if value is None else value.timestamp()
