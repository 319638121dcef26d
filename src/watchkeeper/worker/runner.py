"""How a worker runs one job: by its payload, a check's executor or a remediation action.

A `CheckPayload` goes to the executor of its check's ``kind`` (`Executors`), an
`ActionPayload` to the action of its action's ``kind`` (`Actions`), an `InfraPayload` to
the platform's provider (`InfraRunner`), a `DeployPayload` to the deployment engine
(`DeployRunner`). Both the ``worker``
role and the worker embedded in ``up`` use this, so they cannot run a job differently.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from watchkeeper.jobs.payloads import ActionPayload, CheckPayload, DeployPayload, InfraPayload
from watchkeeper.results import CheckOutcome, CheckState
from watchkeeper.transport.protocol import Job
from watchkeeper.worker.actions import Actions, ActionTarget
from watchkeeper.worker.deploy import DeployRunner
from watchkeeper.worker.executors import Executors
from watchkeeper.worker.infra import InfraRunner


def job_runner(
    executors: Executors | None = None,
    actions: Actions | None = None,
    infra: InfraRunner | None = None,
    deploy: DeployRunner | None = None,
) -> Callable[[Job], Awaitable[CheckOutcome]]:
    """A ``run_job`` for `WorkerConnection`, sharing one executor and action of each kind
    and one provider per platform."""
    shared = executors or (actions.executors if actions is not None else Executors())
    remediation = actions or Actions(shared)
    platforms = infra or InfraRunner(shared.providers)

    async def run_job(job: Job) -> CheckOutcome:
        payload = job.payload
        if isinstance(payload, InfraPayload):
            return await platforms.run(payload)
        if isinstance(payload, DeployPayload):
            if deploy is None:  # routing sends deploy jobs only to deploy=true workers
                return _no_deploy
            return await deploy.run(payload)
        if isinstance(payload, ActionPayload):
            return await remediation.run(payload.action, _target(payload))
        assert isinstance(payload, CheckPayload)
        return await shared.run(payload.check, address=payload.address, timeout=payload.timeout)

    return run_job


_no_deploy = CheckOutcome(
    state=CheckState.CRITICAL,
    output="DEPLOY FAILED - this worker runs no deployments (no deploy runner)",
    data={"changes": [], "error": "no deploy runner", "error_kind": "spec"},
)


def _target(payload: ActionPayload) -> ActionTarget:
    return ActionTarget(
        host=payload.host,
        service=payload.service,
        address=payload.address,
        timeout=payload.timeout,
        platform=payload.platform,
        owner=payload.owner,
    )
