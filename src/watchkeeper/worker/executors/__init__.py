"""Check executors, one module per kind, found through a registry.

    Executors().run(check, address=, timeout=)
        └─▶ plugins.CHECKS.get(check["kind"]) ──▶ plugin | tcp | http | ping | ssh | agent
                                                   | <entry point>
                                                       └─▶ CheckOutcome(state, output, metrics)

Each module holds one executor and the document model of its check (``Config``). Call
`install_child_watcher` once from the worker's running loop.
"""

from __future__ import annotations

from watchkeeper.worker.executors.agent import AgentCheck, AgentExecutor
from watchkeeper.worker.executors.base import Executor, Executors, get_executor
from watchkeeper.worker.executors.http import HttpCheck, HttpExecutor
from watchkeeper.worker.executors.ping import PingCheck, PingExecutor
from watchkeeper.worker.executors.plugin import (
    PluginCheck,
    PluginExecutor,
    ProcessResult,
    install_child_watcher,
    run_process,
)
from watchkeeper.worker.executors.ssh import SshCheck, SshExecutor
from watchkeeper.worker.executors.tcp import TcpCheck, TcpExecutor

__all__ = [
    "AgentCheck",
    "AgentExecutor",
    "Executor",
    "Executors",
    "HttpCheck",
    "HttpExecutor",
    "PingCheck",
    "PingExecutor",
    "PluginCheck",
    "PluginExecutor",
    "ProcessResult",
    "SshCheck",
    "SshExecutor",
    "TcpCheck",
    "TcpExecutor",
    "get_executor",
    "install_child_watcher",
    "run_process",
]
