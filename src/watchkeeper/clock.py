"""The wall clock, injected wherever time matters so tests can control it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """The default clock: aware UTC."""
    return datetime.now(UTC)
