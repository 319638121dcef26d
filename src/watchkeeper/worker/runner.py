"""How a worker runs one job: the executor of the check's kind, or a remediation action.

A check job's spec is the manager's resolved check record: ``check`` is the document's
check object (its ``kind`` picks the executor), ``address`` the host's address and
``timeout`` the check's timeout in seconds. A remediation job's spec has ``action`` (the
action object; its ``kind`` picks the action) and ``host``, ``service``, ``address``,
``timeout`` and, for platform actions, ``platform``. Both the ``worker`` role and the
worker embedded in ``up`` use this, so they cannot run a job differently.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from watchkeeper.results import CheckOutcome, CheckState
from watchkeeper.transport.protocol import Job
from watchkeeper.worker.actions import Actions, ActionTarget
from watchkeeper.worker.executors import Executors

#: Seconds a check may run when its spec names no timeout (the document's default).
DEFAULT_TIMEOUT = 10.0
#: Seconds an action may run when its job names no timeout.
DEFAULT_ACTION_TIMEOUT = 60.0


def job_runner(
    executors: Executors | None = None, actions: Actions | None = None
) -> Callable[[Job], Awaitable[CheckOutcome]]:
    """A ``run_job`` for `WorkerConnection`, sharing one executor and action of each kind."""
    shared = executors or (actions.executors if actions is not None else Executors())
    remediation = actions or Actions(shared)

    async def run_job(job: Job) -> CheckOutcome:
        action: Any = job.spec.get("action")
        if action is not None:
            return await _run_action(remediation, job, action)
        check: Any = job.spec.get("check")
        if not isinstance(check, dict):
            return CheckOutcome(state=CheckState.UNKNOWN, output="UNKNOWN - job has no check")
        return await shared.run(
            check,
            address=str(job.spec.get("address") or ""),
            timeout=float(job.spec.get("timeout") or DEFAULT_TIMEOUT),
        )

    return run_job


async def _run_action(actions: Actions, job: Job, action: Any) -> CheckOutcome:
    if not isinstance(action, dict):
        return CheckOutcome(
            state=CheckState.CRITICAL, output="ACTION FAILED - the job's action is not an object"
        )
    spec = job.spec
    platform = spec.get("platform")
    service = spec.get("service")
    target = ActionTarget(
        host=str(spec.get("host") or ""),
        service=str(service) if service else None,
        address=str(spec.get("address") or ""),
        timeout=float(spec.get("timeout") or DEFAULT_ACTION_TIMEOUT),
        platform=platform if isinstance(platform, dict) else None,
    )
    return await actions.run(action, target)
