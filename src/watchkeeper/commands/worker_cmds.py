"""The worker role: dial a manager's job server and run its jobs.

Apart from the manager's commands (`run_cmds`) so that starting a worker imports neither
the manager, the web app nor the store.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from watchkeeper import liveness, logs
from watchkeeper.addresses import join_host_port, parse_managers
from watchkeeper.commands.exits import EXIT_OK
from watchkeeper.errors import UsageError
from watchkeeper.transport import sensors
from watchkeeper.transport.client import WorkerConnection, WorkerSettings
from watchkeeper.worker.deploy import DeployRunner
from watchkeeper.worker.executors import Executors, install_child_watcher
from watchkeeper.worker.runner import job_runner

_say = logs.say
logger = logging.getLogger(__name__)


def parse_labels(value: str | None) -> dict[str, str]:
    """``k=v,k2=v2`` as a dict; `UsageError` for an item without ``=``."""
    labels: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in (value or "").split(","))):
        key, sep, val = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--labels: expected k=v,k2=v2, got {item!r}")
        labels[key] = val
    return labels


def worker_settings(args: argparse.Namespace) -> WorkerSettings:
    """The worker's flags, checked before anything dials out."""
    (host, port), *more = parse_managers(args.manager or [], "--manager")
    if args.concurrency < 1:
        raise UsageError("--concurrency: must be at least 1")
    if args.reconnect_max <= 0:
        raise UsageError("--reconnect-max: must be above 0 (seconds)")
    pins = list(dict.fromkeys(args.manager_fingerprint or []))
    if not pins:
        raise UsageError("--manager-fingerprint: required (print it with `watchkeeper keys`)")
    if bad := [pin for pin in pins if not pin.startswith("SHA256:")]:
        raise UsageError(
            f"--manager-fingerprint: expected SHA256:... as `watchkeeper keys` prints it, "
            f"got {bad[0]!r}"
        )
    key_path = Path(args.key)
    if not key_path.is_file():
        raise UsageError(f"--key: no such file {key_path}")
    settings = WorkerSettings(
        host=host,
        port=port,
        more_managers=tuple(more),
        key_path=key_path,
        manager_fingerprint=pins[0],
        more_fingerprints=tuple(pins[1:]),
        labels=parse_labels(args.labels),
        concurrency=args.concurrency,
        backoff_cap=args.reconnect_max,
        agent_for=args.agent_for,
        **({"name": args.name} if args.name else {}),
    )
    return settings


async def worker(args: argparse.Namespace) -> int:
    """Dial the manager and run its jobs: SIGTERM drains, SIGINT stops at once."""
    settings = worker_settings(args)
    if args.max_load <= 0:
        raise UsageError("--max-load: must be above 0 (load per core)")
    if args.min_memory < 0:
        raise UsageError("--min-memory: must be 0 or more (MiB)")
    pressure = sensors.default_sensors(
        max_load_per_core=args.max_load, min_available=args.min_memory * 1024 * 1024
    )
    install_child_watcher()
    executors = Executors()
    deploy = DeployRunner(
        state_dir=settings.key_path.absolute().parent,
        manager=manager_list(settings),
        fingerprints=settings.fingerprints,
    )
    connection = WorkerConnection(
        settings,
        job_runner(executors, deploy=deploy),
        sensor_list=pressure,
        on_link=_status_writer(args, settings),
    )
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, connection.drain)
    loop.add_signal_handler(signal.SIGINT, connection.stop)
    _say(f"worker {settings.name} dialling {manager_list(settings, ' or ')}")
    try:
        await connection.run()
    finally:
        await executors.aclose()
    _say("stopped")
    return EXIT_OK


def manager_list(settings: WorkerSettings, sep: str = ",") -> str:
    """Every manager of ``settings``, ``host:port`` joined by ``sep``: with the default, what
    ``--manager`` and ``WATCHKEEPER_MANAGER`` read back (an agent a deploy installs gets it)."""
    return sep.join(join_host_port(host, port) for host, port in settings.managers)


def _status_writer(
    args: argparse.Namespace, settings: WorkerSettings
) -> Callable[[bool, float, str], None]:
    """Record the link in the status file (`watchkeeper.liveness`) for `watchkeeper health`.

    Connected, it names the manager of the session; not, every manager the worker dials.
    A file that cannot be written (a read-only key directory) is said once, and the worker
    goes on: its health is then unknown, its work is not affected.
    """
    path = args.status_file or settings.key_path.absolute().parent / liveness.STATUS_FILE
    everyone = manager_list(settings, " or ")
    failed = False

    def write(connected: bool, interval: float, manager: str) -> None:
        nonlocal failed
        status = liveness.Status(
            role="worker",
            pid=os.getpid(),
            at=time.time(),
            connected=connected,
            heartbeat=interval,
            manager=manager if connected else everyone,
        )
        try:
            liveness.write(Path(path), status)
        except OSError as exc:
            if not failed:
                logger.warning("cannot write the status file %s: %s", path, exc)
            failed = True

    return write
