"""Check executors, one module per kind, found through a registry.

    Executors().run(check, address=, timeout=)
        └─▶ get_executor(check["kind"]) ──▶ plugin | tcp | http | ping | ssh | agent
                                             | <entry point>
                                                 └─▶ CheckOutcome(state, output, metrics)

Importing this package registers the built-in executors. Call `install_child_watcher`
once from the worker's running loop.
"""

from __future__ import annotations

from watchkeeper.worker.executors.agent import AgentExecutor
from watchkeeper.worker.executors.base import (
    ENTRY_POINT_GROUP,
    EXECUTORS,
    Executor,
    ExecutorAlreadyRegistered,
    ExecutorError,
    Executors,
    UnknownCheckKind,
    get_executor,
    load_entry_points,
    register,
)
from watchkeeper.worker.executors.http import HttpExecutor
from watchkeeper.worker.executors.ping import PingExecutor
from watchkeeper.worker.executors.plugin import (
    PluginExecutor,
    ProcessResult,
    install_child_watcher,
    run_process,
)
from watchkeeper.worker.executors.ssh import SshExecutor
from watchkeeper.worker.executors.tcp import TcpExecutor

__all__ = [
    "ENTRY_POINT_GROUP",
    "EXECUTORS",
    "AgentExecutor",
    "Executor",
    "ExecutorAlreadyRegistered",
    "ExecutorError",
    "Executors",
    "HttpExecutor",
    "PingExecutor",
    "PluginExecutor",
    "ProcessResult",
    "SshExecutor",
    "TcpExecutor",
    "UnknownCheckKind",
    "get_executor",
    "install_child_watcher",
    "load_entry_points",
    "register",
    "run_process",
]
