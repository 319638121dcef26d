"""Where a queued job is, and the moves between states: one table, checked on every move.

    pending ──approve──▶ queued ──dispatch──▶ dispatched ──ended──▶ verifying ──▶ succeeded
       │                  ▲  │                  │  │  │                 │      └─▶ failed
       │                  └──┼── requeue ───────┘  │  └──▶ succeeded | failed (no verifying)
       └─▶ skipped | expired ◀┘                    └──▶ interrupted ◀──┘

A job is written before anything is sent and marked ``dispatched`` *before* it is handed
to a worker, so a crash between the two leaves a job that says it may have run. What may
run at most once (``once``: a remediation action, an apply) is never sent again from
``dispatched``: it is verified (``verifying``) or ``interrupted``. A requeue from
``dispatched`` is only for a job no worker took.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping


class JobState(enum.Enum):
    """The state of a queued job; the last five are final."""

    #: Waiting for an operator (``confirm: true`` rules, destroys to confirm): run or skip.
    PENDING = "pending"
    #: Persisted and waiting for a worker and a free slot.
    QUEUED = "queued"
    #: Handed to a worker; marked so *before* it is sent. Its lease runs until it answers.
    DISPATCHED = "dispatched"
    #: The work ended (or its result was lost); its effect is being confirmed.
    VERIFYING = "verifying"
    #: Done, and its effect confirmed.
    SUCCEEDED = "succeeded"
    #: It failed, or its effect could not be confirmed.
    FAILED = "failed"
    #: Not run: an operator skipped it, or it was no longer needed.
    SKIPPED = "skipped"
    #: Waited too long to be confirmed or dispatched.
    EXPIRED = "expired"
    #: The manager stopped while it may have been running: never run again blindly.
    INTERRUPTED = "interrupted"

    @property
    def final(self) -> bool:
        return self not in LIVE

    @property
    def ran(self) -> bool:
        """Whether the work may have started (it was handed to a worker)."""
        return self in _MAY_HAVE_RUN


LIVE = frozenset({JobState.PENDING, JobState.QUEUED, JobState.DISPATCHED, JobState.VERIFYING})
LIVE_STATES = tuple(sorted(s.value for s in LIVE))
_MAY_HAVE_RUN = frozenset(
    {
        JobState.DISPATCHED,
        JobState.VERIFYING,
        JobState.SUCCEEDED,
        JobState.FAILED,
        JobState.INTERRUPTED,
    }
)

#: Every allowed move: state -> the states it may go to.
TRANSITIONS: Mapping[JobState, frozenset[JobState]] = {
    JobState.PENDING: frozenset({JobState.QUEUED, JobState.SKIPPED, JobState.EXPIRED}),
    JobState.QUEUED: frozenset({JobState.DISPATCHED, JobState.SKIPPED, JobState.EXPIRED}),
    JobState.DISPATCHED: frozenset(
        {
            JobState.QUEUED,
            JobState.VERIFYING,
            JobState.SUCCEEDED,
            JobState.FAILED,
            JobState.INTERRUPTED,
        }
    ),
    JobState.VERIFYING: frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.INTERRUPTED}),
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.SKIPPED: frozenset(),
    JobState.EXPIRED: frozenset(),
    JobState.INTERRUPTED: frozenset(),
}


def allowed(source: JobState, target: JobState) -> bool:
    return target in TRANSITIONS[source]


def sources(target: JobState, among: Iterable[JobState] | None = None) -> list[JobState]:
    """The states a job may move to ``target`` from (of ``among``, when given)."""
    pool = JobState if among is None else among
    return [s for s in pool if allowed(s, target)]
