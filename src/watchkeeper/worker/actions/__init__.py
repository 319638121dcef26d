"""Remediation actions a worker runs, one module per kind, found through a registry.

    job_runner(job) ── spec has "action" ──▶ Actions().run(spec["action"], ActionTarget)
        └─▶ ssh | command | http | platform ──▶ CheckOutcome (OK succeeded, CRITICAL failed)

Each module holds one action and the document model of its kind (``Config``);
``platform`` actions go through the platform's provider (`watchkeeper.infra.providers`).
"""

from __future__ import annotations

from watchkeeper.worker.actions.base import (
    Action,
    Actions,
    ActionTarget,
    failed,
    succeeded,
)
from watchkeeper.worker.actions.command import CommandAction, WorkerCommandAction, process_outcome
from watchkeeper.worker.actions.http import HttpAction, HttpActionRunner
from watchkeeper.worker.actions.platform import PlatformAction, PlatformActionRunner
from watchkeeper.worker.actions.ssh import SshAction, SshActionRunner

__all__ = [
    "Action",
    "ActionTarget",
    "Actions",
    "CommandAction",
    "HttpAction",
    "HttpActionRunner",
    "PlatformAction",
    "PlatformActionRunner",
    "SshAction",
    "SshActionRunner",
    "WorkerCommandAction",
    "failed",
    "process_outcome",
    "succeeded",
]
