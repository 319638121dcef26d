"""The command action: run a program on the worker that serves the target's zone.

It runs exactly as a plugin does (`run_process`: no shell, stdin on /dev/null, its own
session, the plugin executor's minimal environment, killed with its process group at the
timeout), with the target in ``WATCHKEEPER_HOST``, ``WATCHKEEPER_SERVICE`` and
``WATCHKEEPER_ADDRESS``. Exit status 0 is success; anything else, a timeout or a program
that cannot start is failure. A daemon the command starts must leave the session
(``setsid``) and close its output, or it is killed with the command's group.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import ClassVar, Literal

from pydantic import BaseModel

from watchkeeper.document.fields import Command, Strict
from watchkeeper.plugins import ACTIONS
from watchkeeper.results import CheckOutcome
from watchkeeper.worker.actions.base import ActionTarget, failed, succeeded
from watchkeeper.worker.executors import Executors, ProcessResult, run_process
from watchkeeper.worker.executors.plugin import DEFAULT_ENV, DEFAULT_MAX_OUTPUT


def process_outcome(result: ProcessResult, *, timeout: float, label: str) -> CheckOutcome:
    """Success for exit status 0; the output is what the command wrote (stdout, then stderr)."""
    stdout = result.stdout.decode("utf-8", "replace").strip()
    stderr = result.stderr.decode("utf-8", "replace").strip()
    text = "\n".join(part for part in (stdout, stderr) if part)
    first, _, rest = text.partition("\n")
    if result.truncated:
        rest += "\n(output truncated)"
    if result.timed_out:
        return failed(
            f"{label} FAILED - timed out after {timeout:g}s",
            long_output=text,
            duration=result.duration,
        )
    code = result.returncode
    if code == 0:
        return succeeded(first or f"{label} OK", long_output=rest, duration=result.duration)
    status = (
        "status lost"
        if code is None
        else (f"killed by signal {-code}" if code < 0 else f"exit status {code}")
    )
    return failed(
        f"{label} FAILED ({status})" + (f" - {first}" if first else ""),
        long_output=rest,
        duration=result.duration,
    )


class WorkerCommandAction(Strict):
    """Run a command on the worker that serves the target's zone."""

    kind: Literal["command"]
    command: Command


@ACTIONS.register
class CommandAction:
    """Runs ``command`` on the worker; ``env`` replaces the plugin executor's environment."""

    kind: ClassVar[str] = "command"
    Config: ClassVar[type[BaseModel]] = WorkerCommandAction

    def __init__(
        self,
        executors: Executors | None = None,
        *,
        env: Mapping[str, str] | None = None,
        max_output: int = DEFAULT_MAX_OUTPUT,
    ) -> None:
        self._env = dict(DEFAULT_ENV if env is None else env)
        self._max_output = max_output

    async def run(self, spec: WorkerCommandAction, target: ActionTarget) -> CheckOutcome:
        env = {
            **self._env,
            "WATCHKEEPER_HOST": target.host,
            "WATCHKEEPER_SERVICE": target.service or "",
            "WATCHKEEPER_ADDRESS": target.address,
            "NAGIOS_HOSTADDRESS": target.address,
        }
        started = time.perf_counter()
        try:
            result = await run_process(
                spec.command, timeout=target.timeout, env=env, max_output=self._max_output
            )
        except OSError as exc:
            why = exc.strerror or str(exc)
            return failed(
                f"COMMAND FAILED - cannot run {spec.command[0]}: {why}",
                duration=time.perf_counter() - started,
            )
        return process_outcome(result, timeout=target.timeout, label="COMMAND")

    async def aclose(self) -> None:
        return None
