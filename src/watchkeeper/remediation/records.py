"""Remediation's jobs as people see them: the ``remediation`` queue of the job table.

A remediation job is one attempt of one rule on one target. It is a `QueuedJob` of the
queue `QUEUE`: its owner is the rule, its subject the target check, its spec the action,
and its meta the target's host and service and what matched (the trigger).
`RemediationJob` is that view, with the JSON the API and the pages show.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from watchkeeper.jobs.queue import AuditEntry, JobQueue, QueueConnector, QueuedJob
from watchkeeper.jobs.states import JobState

#: The queue name of remediation jobs.
QUEUE = "remediation"


def remediation_queue(connector: QueueConnector) -> JobQueue:
    return JobQueue(connector, QUEUE)


@dataclass(frozen=True, slots=True)
class RemediationJob:
    """One attempt of one rule on one target (a job of the remediation queue)."""

    queued: QueuedJob

    @property
    def id(self) -> int:
        return self.queued.id

    @property
    def rule(self) -> str:
        return self.queued.owner

    @property
    def target(self) -> str:
        return self.queued.subject

    @property
    def host(self) -> str:
        return str(self.queued.meta.get("host") or self.target.split("!", 1)[0])

    @property
    def service(self) -> str | None:
        service = self.queued.meta.get("service")
        return None if service is None else str(service)

    @property
    def trigger(self) -> str:
        return str(self.queued.meta.get("trigger") or "")

    @property
    def zone(self) -> str:
        return self.queued.zone

    @property
    def action(self) -> dict[str, Any]:
        return self.queued.spec

    @property
    def state(self) -> JobState:
        return self.queued.state

    @property
    def created_at(self) -> float:
        return self.queued.created_at

    @property
    def updated_at(self) -> float:
        return self.queued.updated_at

    @property
    def dispatched_at(self) -> float | None:
        return self.queued.dispatched_at

    @property
    def finished_at(self) -> float | None:
        return self.queued.finished_at

    @property
    def worker(self) -> str | None:
        return self.queued.worker

    @property
    def output(self) -> str | None:
        return self.queued.output

    @property
    def decided_by(self) -> str | None:
        return self.queued.decided_by

    @property
    def wire_id(self) -> str:
        return self.queued.wire_id

    def as_dict(self) -> dict[str, Any]:
        """The JSON form for the API."""
        return {
            "id": self.id,
            "rule": self.rule,
            "target": self.target,
            "host": self.host,
            "service": self.service,
            "zone": self.zone,
            "action": self.action,
            "state": self.state.value,
            "trigger": self.trigger,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "dispatched_at": self.dispatched_at,
            "finished_at": self.finished_at,
            "worker": self.worker,
            "output": self.output,
            "decided_by": self.decided_by,
        }


def audit_dict(entry: AuditEntry) -> dict[str, Any]:
    """An audit entry as the remediation API shows it (owner is the rule, subject the target)."""
    return {
        "id": entry.id,
        "at": entry.at,
        "job_id": entry.job_id,
        "rule": entry.owner,
        "target": entry.subject,
        "event": entry.event,
        "outcome": entry.outcome,
        "worker": entry.worker,
        "author": entry.author,
        "output": entry.output,
    }


async def get_job(queue: JobQueue, job_id: int) -> RemediationJob | None:
    found = await queue.get(job_id)
    return None if found is None else RemediationJob(found)


async def list_jobs(
    queue: JobQueue,
    *,
    states: Iterable[JobState] | None = None,
    rule: str | None = None,
    target: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[RemediationJob]:
    """Remediation jobs, newest first, filtered by state, rule and target."""
    found = await queue.list_jobs(
        states=states, owner=rule, subject=target, limit=limit, offset=offset
    )
    return [RemediationJob(job) for job in found]
