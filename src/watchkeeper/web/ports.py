"""What the web needs of a running manager: two small ports, implemented by the manager.

    ReadModel    what runs now and what happened: checks and their statuses, hosts, zones,
                 workers, the alarm book's marks, latest metric values, the job queue
    Operations   what an operator may change: check now, acknowledge, downtimes,
                 run or skip a remediation
    Intake       where a pushed candidate document goes (the same path polled ones take)
    Infra        the infrastructure stage: platforms, resources, plans, the journal of
                 changes, and what operators ask of it (confirm, apply, unprotect, ...)
    Deploy       the deployment stage: deployments and their hosts' last runs, check or
                 apply now, and the agent keys an admin approves or rejects

The pages and the API depend on these Protocols only, never on the engine runner or the
stages (`watchkeeper.manager.ports` is the implementation); a test can serve the web on
fakes, and the manager's insides can change without the web noticing. Errors are the
request errors of `watchkeeper.errors` (`NotFound`, `Conflict`, `InvalidArgument`),
which the app maps to 404, 409 and 422 in one place.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from watchkeeper.alarms.values import Alarm, AlarmEvent, Downtime
from watchkeeper.document.diff import ConfigDiff
from watchkeeper.document.normalize import CheckRecord
from watchkeeper.document.problems import Problem
from watchkeeper.engine import CheckStatus, HostStatus, ZoneStatus
from watchkeeper.jobs.queue import JobQueue
from watchkeeper.jobs.states import JobState
from watchkeeper.remediation.records import RemediationJob
from watchkeeper.store.bulk import Listed
from watchkeeper.telemetry.recorder import LatestMetric
from watchkeeper.telemetry.rollup import Retention
from watchkeeper.transport.workers import WorkerInfo


class ReadModel(Protocol):
    """The running system, for reading. Memory reads are cheap; the async ones may query."""

    # --- the engine ---------------------------------------------------------------------

    def checks(self) -> Iterator[tuple[CheckRecord, CheckStatus]]:
        """Every running check with its status, in one pass."""
        ...

    def check(self, key: str) -> tuple[CheckRecord, CheckStatus] | None:
        """One running check with its status, or None."""
        ...

    def check_count(self) -> int: ...

    def next_due(self, key: str) -> float | None:
        """When the check is queued to run next; None while it runs."""
        ...

    def host_statuses(self) -> Mapping[str, HostStatus]:
        """The state of every host with a check of its own (UP, DOWN, UNREACHABLE)."""
        ...

    @property
    def zones(self) -> frozenset[str]:
        """The zones running checks are in (agent pools left out)."""
        ...

    def zone_statuses(self) -> Mapping[str, ZoneStatus]:
        """Whether each pool of the running checks has a worker (agent pools included)."""
        ...

    def workers(self) -> list[WorkerInfo]:
        """The connected workers (agents included), by name."""
        ...

    # --- alarms -------------------------------------------------------------------------

    def open_alarms(self) -> list[Alarm]:
        """The open alarms, oldest first (memory)."""
        ...

    def active_downtimes(self, now: float) -> list[Downtime]:
        """The downtimes in force at ``now`` (memory)."""
        ...

    def flapping(self, key: str) -> bool: ...

    def silenced(self, key: str, now: float) -> str | None:
        """Why notifications and remediation leave the check alone now, or None."""
        ...

    async def list_alarms(
        self,
        *,
        open_only: bool = True,
        key: str | None = None,
        host: str | None = None,
        limit: int = 100,
        before_id: int | None = None,
    ) -> list[Alarm]: ...

    async def page_alarms(
        self,
        *,
        open_only: bool = True,
        key: str | None = None,
        host: str | None = None,
        limit: int = 100,
        offset: int = 0,
        before_id: int | None = None,
    ) -> Listed[Alarm]:
        """One page of `list_alarms`, and how many alarms match in all."""
        ...

    async def alarm_events(self, alarm_id: int) -> list[AlarmEvent]: ...

    async def list_downtimes(self, *, include_past: bool = False) -> list[Downtime]: ...

    # --- telemetry and the job queue ----------------------------------------------------

    def latest_metrics(self) -> list[LatestMetric]:
        """The last value of every metric of the running checks."""
        ...

    @property
    def retention(self) -> Retention:
        """How long each telemetry tier is kept (queries pick the tier by it)."""
        ...

    @property
    def remediation_queue(self) -> JobQueue:
        """Remediation's jobs and audit."""
        ...


class Operations(Protocol):
    """What an operator may change; every call is validated and saved before it returns."""

    def check_now(self, key: str) -> bool:
        """Run the check at the engine's next turn; False when no such check runs."""
        ...

    async def acknowledge(
        self, key: str, author: str, comment: str, sticky: bool = True, expires: float | None = None
    ) -> list[Alarm]: ...

    async def unacknowledge(self, key: str) -> list[Alarm]: ...

    async def schedule_downtime(
        self, host: str, service: str | None, start: float, end: float, author: str, comment: str
    ) -> Downtime: ...

    async def cancel_downtime(self, downtime_id: int) -> Downtime: ...

    async def run_pending(self, job_id: int, author: str) -> RemediationJob:
        """Approve a pending remediation job."""
        ...

    async def skip_pending(self, job_id: int, author: str, reason: str = "") -> RemediationJob: ...


class Outcome(Protocol):
    """What became of a pushed candidate (`watchkeeper.manager.intake.IntakeOutcome`)."""

    @property
    def accepted(self) -> bool: ...
    @property
    def created(self) -> bool: ...
    @property
    def version_id(self) -> int | None: ...
    @property
    def content_hash(self) -> str: ...
    @property
    def diff(self) -> ConfigDiff | None: ...
    @property
    def problems(self) -> list[Problem]: ...


class Intake(Protocol):
    """Takes candidate documents: validated, then imported or recorded as rejected."""

    async def submit(self, body: bytes, *, source: str) -> Outcome: ...


class Infra(Protocol):
    """The infrastructure stage as JSON (`watchkeeper.infra.views.InfraView`)."""

    def platforms(self) -> list[dict[str, Any]]: ...

    def resources(self) -> list[dict[str, Any]]: ...

    def plans(self) -> list[dict[str, Any]]: ...

    def hold(self) -> dict[str, Any] | None: ...

    async def operations(
        self,
        *,
        states: Sequence[JobState] | None = None,
        resource: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], int]: ...

    async def operation(self, job_id: int) -> dict[str, Any]: ...

    def host_machine(self, host: str) -> dict[str, Any] | None:
        """The platform and machine filling a slot host, or None (not a slot, or empty)."""
        ...

    def address(self, host: str) -> str | None:
        """A slot host's address from the inventory (the document has none for it)."""
        ...

    async def apply(self, only: Sequence[str], author: str) -> list[str]: ...

    async def decide(self, job_id: int, *, run: bool, author: str) -> dict[str, Any]: ...

    async def unprotect(self, target: str, author: str) -> dict[str, Any]: ...

    async def adopt(self, target: str, author: str) -> dict[str, Any]: ...

    async def accept(self, platform: str, author: str) -> None: ...

    async def confirm_hold(self, author: str) -> None: ...


class Deploy(Protocol):
    """The deployment stage as JSON (`watchkeeper.deploy.views.DeployView`)."""

    def deployments(self) -> list[dict[str, Any]]: ...

    def deployment(self, name: str) -> dict[str, Any]:
        """One deployment; `NotFound` naming it."""
        ...

    def request(
        self, deployment: str, host: str | None, mode: Literal["check", "apply"], author: str
    ) -> list[str]:
        """A check or an apply now (an apply resumes a halted rollout); the hosts it
        applies to; `NotFound` for an unknown deployment or host."""
        ...

    async def pending_keys(self) -> list[dict[str, Any]]: ...

    async def approve(self, host: str, who: str) -> dict[str, Any]:
        """Enrol the host's pending agent key; `NotFound` when none waits."""
        ...

    async def reject(self, host: str, who: str) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class WebPorts:
    """The ports the app is built on."""

    read: ReadModel
    ops: Operations
    infra: Infra | None = None
    deploy: Deploy | None = None


class Cluster(Protocol):
    """This manager's place in its cluster (`watchkeeper.cluster.status.ClusterView`)."""

    #: Clustered: a standby refuses leader-only requests.
    ha: bool
    #: The leader's web address as last read ("" when unknown or this node leads).
    leader_url: str

    @property
    def leader(self) -> str:
        """The node that leads ("" while an election runs)."""
        ...

    def may_write(self) -> bool:
        """Whether leader-only requests are served here now."""
        ...

    def sample(self) -> tuple[str, bool, int] | None:
        """Node, leads, term for ``/metrics``; None for a single manager."""
        ...

    async def status(self) -> dict[str, Any]:
        """The role, the term, the nodes and the history of terms."""
        ...
