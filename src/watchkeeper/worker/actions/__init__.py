"""Remediation actions a worker runs, one module per kind, found through a registry.

    job_runner(job) ── spec has "action" ──▶ Actions().run(spec["action"], ActionTarget)
        └─▶ ssh | command | http | platform ──▶ CheckOutcome (OK succeeded, CRITICAL failed)

Importing this package registers the built-in actions. ``platform`` actions run hooks
that infrastructure providers register with `register_platform_hook`.
"""

from __future__ import annotations

from watchkeeper.worker.actions.base import (
    ACTIONS,
    Action,
    ActionAlreadyRegistered,
    ActionError,
    Actions,
    ActionTarget,
    failed,
    register,
    succeeded,
)
from watchkeeper.worker.actions.command import CommandAction, process_outcome
from watchkeeper.worker.actions.http import HttpActionRunner
from watchkeeper.worker.actions.platform import (
    PLATFORM_HOOKS,
    PlatformActionRunner,
    PlatformHook,
    PlatformRequest,
    register_platform_hook,
    unregister_platform_hook,
)
from watchkeeper.worker.actions.ssh import SshActionRunner

__all__ = [
    "ACTIONS",
    "PLATFORM_HOOKS",
    "Action",
    "ActionAlreadyRegistered",
    "ActionError",
    "ActionTarget",
    "Actions",
    "CommandAction",
    "HttpActionRunner",
    "PlatformActionRunner",
    "PlatformHook",
    "PlatformRequest",
    "SshActionRunner",
    "failed",
    "process_outcome",
    "register",
    "register_platform_hook",
    "succeeded",
    "unregister_platform_hook",
]
