"""Long-running roles: ``up`` (everything in one process), ``manager`` and ``worker``."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import signal
from datetime import timedelta
from pathlib import Path

from watchkeeper import logs
from watchkeeper.commands.common import EXIT_OK
from watchkeeper.document.durations import parse_duration
from watchkeeper.errors import UsageError
from watchkeeper.manager.demo import bundled_example
from watchkeeper.manager.stages import Retention, StageSettings
from watchkeeper.remediation.service import RemediationSettings
from watchkeeper.runtime import Manager, ManagerSettings, parse_listen
from watchkeeper.telemetry.recorder import TelemetrySettings
from watchkeeper.transport import sensors
from watchkeeper.transport.client import WorkerConnection, WorkerSettings
from watchkeeper.transport.server import DEFAULT_PORT
from watchkeeper.worker.deploy import DeployRunner
from watchkeeper.worker.executors import Executors, install_child_watcher
from watchkeeper.worker.runner import job_runner


def _settings(
    args: argparse.Namespace, source: str, *, embedded_worker: bool = False
) -> ManagerSettings:
    host, port = parse_listen(args.http)
    jobs_host, jobs_port = parse_listen(args.jobs, "--jobs", DEFAULT_PORT)
    return ManagerSettings(
        source=source,
        data_dir=Path(args.data_dir).absolute(),
        database=args.database,
        http_host=host,
        http_port=port,
        poll_interval=args.poll_interval,
        source_timeout=args.timeout,
        max_bytes=args.max_bytes,
        bearer_token=args.bearer_token,
        jobs_host=jobs_host,
        jobs_port=jobs_port,
        embedded_worker=embedded_worker,
        tls_cert=_absolute(getattr(args, "tls_cert", None)),
        tls_key=_absolute(getattr(args, "tls_key", None)),
        stages=stage_settings(args),
    )


def stage_settings(args: argparse.Namespace) -> StageSettings:
    """Retention and the remediation limit from the flags; `UsageError` names the flag."""
    seconds = {
        flag: _duration(flag, getattr(args, name))
        for flag, name in (
            ("--retention-raw", "retention_raw"),
            ("--retention-5m", "retention_5m"),
            ("--retention-1h", "retention_1h"),
        )
    }
    try:
        telemetry = TelemetrySettings(
            raw_retention=seconds["--retention-raw"],
            five_minute_retention=seconds["--retention-5m"],
            hourly_retention=seconds["--retention-1h"],
        )
    except ValueError:
        raise UsageError(
            "--retention-raw, --retention-5m, --retention-1h: each must be at least the one "
            f"before it, got {args.retention_raw}, {args.retention_5m}, {args.retention_1h}"
        ) from None
    if args.remediation_concurrency < 1:
        raise UsageError(
            f"--remediation-concurrency: must be at least 1, got {args.remediation_concurrency}"
        )
    if args.keep_versions < 1:
        raise UsageError(f"--keep-versions: must be at least 1, got {args.keep_versions}")
    versions_for = _duration("--keep-versions-for", args.keep_versions_for)
    return StageSettings(
        telemetry=telemetry,
        remediation=RemediationSettings(global_concurrency=args.remediation_concurrency),
        retention=Retention(
            versions_kept=args.keep_versions, versions_for=timedelta(seconds=versions_for)
        ),
    )


def _duration(flag: str, text: str) -> float:
    try:
        value = parse_duration(text).total_seconds()
    except ValueError as exc:
        raise UsageError(f"{flag}: {exc}") from None
    if value <= 0:
        raise UsageError(f"{flag}: must be longer than zero, got {text!r}")
    return value


def _absolute(path: Path | None) -> Path | None:
    return None if path is None else Path(path).absolute()


_say = logs.say


async def _serve(manager: Manager) -> int:
    async def started() -> None:
        _say(f"Watchkeeper manager ready; source {manager.settings.source}")
        _say(f"API: {manager.url}/api/v1  (OpenAPI at {manager.url}/api/v1/openapi.json)")
        _say(f"API token: {manager.token_path}  (mode 0600)")
        if manager.first_admin_password is not None:
            _say(
                f"log in at {manager.url}/login as admin, password "
                f"{manager.first_admin_password}  (shown once; change it with "
                "`watchkeeper user passwd admin`)"
            )
        else:
            _say(f"log in at {manager.url}/login (`watchkeeper user add NAME` makes users)")
        _say(f"job server: {manager.settings.jobs_host}:{manager.jobs_port} (SSH)")
        _say(
            f'try: curl -H "Authorization: Bearer $(cat {manager.token_path})" '
            f"{manager.url}/api/v1/config/current"
        )

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, manager.stop)
    await manager.run(started)
    _say("stopped")
    return EXIT_OK


async def up(args: argparse.Namespace) -> int:
    source = args.source or str(bundled_example())
    settings = _settings(args, source, embedded_worker=True)
    settings = dataclasses.replace(settings, demo=not args.source)
    manager = Manager(settings, on_event=_say)
    _say("Watchkeeper up: the manager and one embedded worker; check states follow as they")
    _say("change (a summary line each time)")
    return await _serve(manager)


async def manager(args: argparse.Namespace) -> int:
    return await _serve(Manager(_settings(args, args.source), on_event=_say))


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
    host, port = parse_listen(args.manager, "--manager", DEFAULT_PORT)
    if args.concurrency < 1:
        raise UsageError("--concurrency: must be at least 1")
    if args.reconnect_max <= 0:
        raise UsageError("--reconnect-max: must be above 0 (seconds)")
    if not args.manager_fingerprint:
        raise UsageError("--manager-fingerprint: required (print it with `watchkeeper keys`)")
    key_path = Path(args.key)
    if not key_path.is_file():
        raise UsageError(f"--key: no such file {key_path}")
    settings = WorkerSettings(
        host=host,
        port=port,
        key_path=key_path,
        manager_fingerprint=args.manager_fingerprint,
        labels=parse_labels(args.labels),
        concurrency=args.concurrency,
        backoff_cap=args.reconnect_max,
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
        state_dir=settings.key_path.absolute().parent, manager=f"{settings.host}:{settings.port}"
    )
    connection = WorkerConnection(
        settings, job_runner(executors, deploy=deploy), sensor_list=pressure
    )
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, connection.drain)
    loop.add_signal_handler(signal.SIGINT, connection.stop)
    _say(f"worker {settings.name} dialling {settings.host}:{settings.port}")
    try:
        await connection.run()
    finally:
        await executors.aclose()
    _say("stopped")
    return EXIT_OK
