"""The manager's roles: ``up`` (manager and an embedded worker in one process) and ``manager``."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import signal
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from watchkeeper import liveness, logs
from watchkeeper.addresses import JOBS_PORT, parse_listen
from watchkeeper.cluster.lease import LeaseSettings
from watchkeeper.commands.exits import EXIT_OK
from watchkeeper.document.durations import parse_duration
from watchkeeper.errors import UsageError
from watchkeeper.manager.demo import bundled_example
from watchkeeper.manager.stages import Retention, StageSettings
from watchkeeper.remediation.service import RemediationSettings
from watchkeeper.runtime import Manager, ManagerSettings
from watchkeeper.telemetry.recorder import TelemetrySettings


def _settings(
    args: argparse.Namespace, source: str, *, embedded_worker: bool = False
) -> ManagerSettings:
    host, port = parse_listen(args.http)
    jobs_host, jobs_port = parse_listen(args.jobs, "--jobs", JOBS_PORT)
    extra: dict[str, Any] = {}  # `up`'s own flags; ManagerSettings has their defaults
    concurrency = getattr(args, "concurrency", None)
    if concurrency is not None:
        if concurrency < 1:
            raise UsageError("--concurrency: must be at least 1")
        extra["embedded_concurrency"] = concurrency
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
        **_cluster_settings(args),
        **extra,
    )


def _cluster_settings(args: argparse.Namespace) -> dict[str, Any]:
    """``--ha``, ``--node``, ``--lease``, ``--cluster-heartbeat`` (``manager`` only)."""
    if not getattr(args, "ha", False):
        return {}
    lease = _duration("--lease", args.lease)
    heartbeat = _duration("--cluster-heartbeat", args.cluster_heartbeat)
    try:
        settings = LeaseSettings(lease=lease, heartbeat=heartbeat)
    except ValueError as exc:
        raise UsageError(f"--lease/--cluster-heartbeat: {exc}") from None
    return {"ha": True, "node": args.node, "lease": settings}


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


async def _serve(manager: Manager, status_file: Path | None) -> int:
    async def started() -> None:
        path = status_file or manager.settings.data_dir / liveness.STATUS_FILE
        status = liveness.Status(role="manager", pid=os.getpid(), at=time.time(), url=manager.url)
        liveness.write(Path(path), status)
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
    return await _serve(manager, args.status_file)


async def manager(args: argparse.Namespace) -> int:
    return await _serve(Manager(_settings(args, args.source), on_event=_say), args.status_file)
