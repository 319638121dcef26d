"""The ssh action: run a command on the target host over SSH.

It borrows the worker's ssh executor, so it shares its pooled connections, its key cache
and its known_hosts file (strict: the host's key must be known already; an action never
trusts a new host key). Exit status 0 is success. The executor reads the remote exit
status as a plugin's (0-3), so the failure line names the status class it saw.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel

from watchkeeper.document.fields import Command, Port, SecretRef, Strict
from watchkeeper.plugins import ACTIONS
from watchkeeper.results import CheckOutcome, CheckState
from watchkeeper.worker.actions.base import ActionTarget, failed, succeeded
from watchkeeper.worker.executors import Executors

#: What the ssh executor's plugin reading of an exit status says about it.
_STATUS = {
    CheckState.WARNING: "exit status 1",
    CheckState.CRITICAL: "exit status 2",
    CheckState.UNKNOWN: "exit status 3 or more, or the command could not run",
}


class SshAction(Strict):
    """Run a command on the target host over SSH."""

    kind: Literal["ssh"]
    command: Command
    user: str = "watchkeeper"
    port: Port = 22
    key: SecretRef


@ACTIONS.register
class SshActionRunner:
    """Runs an ``ssh`` action through the shared `SshExecutor`."""

    kind: ClassVar[str] = "ssh"
    Config: ClassVar[type[BaseModel]] = SshAction

    def __init__(self, executors: Executors) -> None:
        self._executors = executors

    async def run(self, spec: SshAction, target: ActionTarget) -> CheckOutcome:
        check = {
            "kind": "ssh",
            "command": list(spec.command),
            "user": spec.user,
            "port": spec.port,
            "key": spec.key,
            "known_hosts": "strict",
        }
        result = await self._executors.get("ssh").run(
            check, address=target.address, timeout=target.timeout
        )
        if result.state is CheckState.OK:
            return succeeded(
                result.output, long_output=result.long_output, duration=result.duration
            )
        return failed(
            f"SSH ACTION FAILED ({_STATUS[result.state]}) - {result.output}",
            long_output=result.long_output,
            duration=result.duration,
        )

    async def aclose(self) -> None:
        return None  # the executor is the worker's, closed with it
