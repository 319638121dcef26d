"""How a worker runs one job: the executor of the check's kind, on the job's own settings.

The job's spec is the manager's resolved check record: ``check`` is the document's check
object (its ``kind`` picks the executor), ``address`` the host's address and ``timeout``
the check's timeout in seconds. Both the ``worker`` role and the worker embedded in ``up``
use this, so they cannot run a check differently.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from watchkeeper.results import CheckOutcome, CheckState
from watchkeeper.transport.protocol import Job
from watchkeeper.worker.executors import Executors

#: Seconds a check may run when its spec names no timeout (the document's default).
DEFAULT_TIMEOUT = 10.0


def job_runner(executors: Executors | None = None) -> Callable[[Job], Awaitable[CheckOutcome]]:
    """A ``run_job`` for `WorkerConnection`, sharing one executor of each kind."""
    shared = executors or Executors()

    async def run_job(job: Job) -> CheckOutcome:
        check: Any = job.spec.get("check")
        if not isinstance(check, dict):
            return CheckOutcome(state=CheckState.UNKNOWN, output="UNKNOWN - job has no check")
        return await shared.run(
            check,
            address=str(job.spec.get("address") or ""),
            timeout=float(job.spec.get("timeout") or DEFAULT_TIMEOUT),
        )

    return run_job
