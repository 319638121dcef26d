"""Long-running roles: ``up`` (everything in one process) and ``manager``."""

from __future__ import annotations

import argparse
import asyncio
import signal
from datetime import datetime
from importlib import resources
from pathlib import Path

from watchkeeper.commands.common import EXIT_OK
from watchkeeper.manager.runtime import Manager, ManagerSettings, parse_listen


def bundled_example() -> Path:
    """The demo document shipped inside the package."""
    return Path(str(resources.files("watchkeeper") / "examples" / "demo.json"))


def _settings(args: argparse.Namespace, source: str) -> ManagerSettings:
    host, port = parse_listen(args.http)
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
    )


def _say(message: str) -> None:
    print(f"{datetime.now():%H:%M:%S} {message}", flush=True)


async def _serve(manager: Manager) -> int:
    async def started() -> None:
        _say(f"Watchkeeper manager ready; source {manager.settings.source}")
        _say(f"API: {manager.url}/api/v1  (OpenAPI at {manager.url}/api/v1/openapi.json)")
        _say(f"API token: {manager.token_path}  (mode 0600)")
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
    manager = Manager(_settings(args, source), on_event=_say)
    _say("Watchkeeper up: the manager imports and serves the document; checks run once the")
    _say("job engine and embedded worker land (see docs/operating.md)")
    return await _serve(manager)


async def manager(args: argparse.Namespace) -> int:
    return await _serve(Manager(_settings(args, args.source), on_event=_say))
