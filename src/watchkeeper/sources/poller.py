"""The loop that polls one source and hands each new candidate to the intake.

A source that fails is retried with capped, jittered backoff; nothing reaches the
intake, so the running configuration stays as it is, and the failure is visible on
`SourceStatus` (and logged once when it starts and once when it ends, not on every poll).
A candidate the intake rejects (`DocumentError`) is not a source failure: the source did
its job, so the poll counts as a success and the refusal is recorded on the status.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from watchkeeper.backoff import backoff_delay
from watchkeeper.clock import Clock
from watchkeeper.errors import DocumentError, SourceError, UsageError
from watchkeeper.sources.base import Candidate, Source

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceStatus:
    """How one source is doing, as of its last poll."""

    name: str
    #: False while the source fails; a rejected document does not make it False.
    ok: bool = True
    last_attempt: datetime | None = None
    last_success: datetime | None = None
    #: The error of the current failing streak; None once the source recovers.
    last_error: str | None = None
    consecutive_failures: int = 0
    next_attempt: datetime | None = None
    #: When the source last delivered a new candidate (accepted or not).
    last_candidate: datetime | None = None
    #: Why the last delivered candidate was rejected; None once one is accepted.
    last_rejection: str | None = None

    def log_context(self) -> dict[str, object]:
        return {
            "name": self.name,
            "ok": self.ok,
            "consecutive_failures": self.consecutive_failures,
            "last_error": self.last_error,
        }


class Poller:
    """Polls ``source`` every ``interval`` seconds, backing off while it fails.

    ``clock``, ``sleep`` and ``rng`` are injectable so tests run without waiting.
    ``on_candidate`` raising `DocumentError` means "rejected"; any other exception it
    raises is a bug or a broken store and propagates, ending `run`.
    """

    def __init__(
        self,
        source: Source,
        on_candidate: Callable[[Candidate], Awaitable[None]],
        *,
        interval: float,
        backoff_base: float = 1.0,
        backoff_cap: float = 300.0,
        clock: Clock,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        on_status: Callable[[SourceStatus], Awaitable[None]] | None = None,
    ) -> None:
        if not interval > 0:
            raise UsageError(f"--poll-interval: must be positive seconds, got {interval}")
        if not 0 < backoff_base <= backoff_cap:
            raise UsageError(
                f"backoff: need 0 < base <= cap, got base {backoff_base} and cap {backoff_cap}"
            )
        self.source = source
        self.interval = interval
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._on_candidate = on_candidate
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._on_status = on_status
        self._status = SourceStatus(name=source.name)

    @property
    def status(self) -> SourceStatus:
        return self._status

    async def run(self) -> None:
        """Poll until cancelled; cancellation interrupts a fetch or a sleep cleanly."""
        while True:
            status = await self.poll_once()
            if self._on_status is not None:
                await self._on_status(status)
            wait = 0.0
            if status.next_attempt is not None:
                wait = max(0.0, (status.next_attempt - self._clock()).total_seconds())
            await self._sleep(wait)

    async def poll_once(self) -> SourceStatus:
        """Fetch once, deliver a new candidate, and return (and keep) the new status."""
        now = self._clock()
        try:
            candidate = await self.source.fetch()
        except SourceError as exc:
            self._status = self._failed(now, exc)
            return self._status
        was_failing = not self._status.ok
        status = dataclasses.replace(
            self._status,
            ok=True,
            last_attempt=now,
            last_success=now,
            last_error=None,
            consecutive_failures=0,
            next_attempt=now + timedelta(seconds=self.interval),
        )
        if was_failing:
            logger.info(
                "source %s recovered",
                status.name,
                extra={"action": "source_recovered", "source": status.log_context()},
            )
        if candidate is not None:
            status = await self._deliver(candidate, status)
        self._status = status
        return status

    async def _deliver(self, candidate: Candidate, status: SourceStatus) -> SourceStatus:
        status = dataclasses.replace(status, last_candidate=candidate.fetched_at)
        try:
            await self._on_candidate(candidate)
        except DocumentError as exc:  # the intake has reported it; only note it here
            logger.debug(
                "candidate from source %s rejected: %s",
                status.name,
                exc,
                extra={"action": "candidate_rejected", "candidate": candidate.log_context()},
            )
            return dataclasses.replace(status, last_rejection=str(exc))
        return dataclasses.replace(status, last_rejection=None)

    def _failed(self, now: datetime, exc: SourceError) -> SourceStatus:
        failures = self._status.consecutive_failures + 1
        delay = backoff_delay(failures, base=self.backoff_base, cap=self.backoff_cap, rng=self._rng)
        status = dataclasses.replace(
            self._status,
            ok=False,
            last_attempt=now,
            last_error=str(exc),
            consecutive_failures=failures,
            next_attempt=now + timedelta(seconds=delay),
        )
        if failures == 1:
            logger.warning(
                "source %s failing, keeping the running configuration: %s",
                status.name,
                exc,
                extra={"action": "source_failing", "source": status.log_context()},
            )
        else:
            logger.debug(
                "source %s still failing (%d in a row, next attempt in %.1f s): %s",
                status.name,
                failures,
                delay,
                exc,
                extra={"action": "source_still_failing", "source": status.log_context()},
            )
        return status
