"""Where remediation touches the world: the job queue, the job server, notifications.

The planner decides; the service calls these to carry each decision out. Every write
goes through the queue's conditional moves (`watchkeeper.jobs.queue`), so a decision that
lost a race (an operator skipped the job first) writes nothing and is told so (None).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from watchkeeper.jobs.payloads import ActionPayload
from watchkeeper.jobs.queue import AuditEntry, JobQueue, NewJob
from watchkeeper.jobs.states import JobState
from watchkeeper.notify.notification import Notification, Notify
from watchkeeper.remediation.planner import Create
from watchkeeper.remediation.records import RemediationJob
from watchkeeper.transport.protocol import Job, Result

#: Told how an action job ended: its result, or None and why it was lost; and the worker
#: that answered (None when lost). The runner's `watchkeeper.manager.runner.ActionDone`.
ActionDone = Callable[[Result | None, str | None, str | None], None]


class ActionRunner(Protocol):
    """What remediation needs of the engine runner (`EngineRunner` has both)."""

    async def submit_action(self, job: Job, done: ActionDone) -> bool: ...

    def check_now(self, key: str) -> bool: ...


class Enforcer:
    """Carries out remediation's decisions; holds no state of its own but the wiring."""

    def __init__(self, queue: JobQueue, notify: Notify, runner: ActionRunner | None = None):
        self.queue = queue
        self.runner = runner
        self._notify = notify

    async def create(self, decision: Create, now: float) -> RemediationJob:
        """Write the job (queued, or pending an operator) with its first audit entry."""
        record_host = decision.problem.host
        job = await self.queue.enqueue(
            NewJob(
                kind="action",
                owner=decision.rule.name,
                subject=decision.problem.key,
                zone=decision.zone,
                spec=dict(decision.rule.action),
                state=decision.state,
                key=f"{decision.rule.name}|{decision.problem.key}",
                meta={
                    "host": record_host,
                    "service": decision.problem.service,
                    "trigger": decision.problem.trigger,
                },
            ),
            now=now,
            output=decision.output,
        )
        return RemediationJob(job)

    async def move(
        self,
        job: RemediationJob,
        to: JobState,
        *,
        now: float,
        event: str,
        note: str | None,
        output: str | None = None,
        worker: str | None = None,
        author: str | None = None,
        lease_until: float | None = None,
    ) -> RemediationJob | None:
        """One allowed move from the state the job is in; None if someone moved it first."""
        moved = await self.queue.move(
            job.queued, to, now=now, event=event, note=note, output=output, worker=worker,
            author=author, lease_until=lease_until,
        )  # fmt: skip
        return None if moved is None else RemediationJob(moved)

    async def move_by_id(
        self,
        job_id: int,
        expect: Sequence[JobState],
        to: JobState,
        *,
        now: float,
        event: str,
        note: str,
        output: str | None,
        author: str,
    ) -> RemediationJob | None:
        """An operator's move of a job they name; None when it is not in ``expect``."""
        moved = await self.queue.move(
            job_id, to, expect=expect, now=now, event=event, note=note, output=output,
            author=author,
        )  # fmt: skip
        return None if moved is None else RemediationJob(moved)

    async def submit(
        self, job: RemediationJob, payload: ActionPayload, deadline: float, done: ActionDone
    ) -> bool:
        """Hand a dispatched job to a worker of its zone; False when none takes it now."""
        if self.runner is None:
            return False
        wire = Job(
            job_id=job.wire_id,
            zone=job.zone,
            payload=payload,
            deadline=deadline,
            once=True,  # an action that may have run is never re-sent to a peer
        )
        return await self.runner.submit_action(wire, done)

    def recheck(self, key: str) -> bool:
        """Ask the engine to run the target's check now; False when it is not checked."""
        return self.runner is not None and self.runner.check_now(key)

    async def record(self, entries: Sequence[AuditEntry]) -> None:
        await self.queue.record_audit(entries)

    def notify(self, notification: Notification) -> None:
        self._notify(notification)
