"""The manager with its embedded worker runs a document's checks end to end on loopback.

Real SSH job server, real worker, real ``check_dummy`` and a real TCP listener; states are
read back from the store, where the engine's runner saves them in batches.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.waiting import wait_until
from watchkeeper import store
from watchkeeper.runtime import Manager, ManagerSettings

CHECK_DUMMY = "/usr/lib/nagios/plugins/check_dummy"

pytestmark = pytest.mark.skipif(
    not Path(CHECK_DUMMY).exists(), reason="monitoring-plugins (check_dummy) not installed"
)


def document(port: int, *, bad_exit: str = "2") -> dict[str, Any]:
    fast = {"interval": "1s", "retry_interval": "1s", "max_attempts": 1, "timeout": "5s"}
    return {
        "schema": "watchkeeper/v1",
        "zones": [{"name": "core"}],
        "hosts": [{"name": "h1", "address": "127.0.0.1", "zone": "core"}],
        "services": [
            {"name": "good", "hosts": ["h1"], **fast,
             "check": {"kind": "plugin", "command": [CHECK_DUMMY, "0", "fine"]}},
            {"name": "bad", "hosts": ["h1"], **fast,
             "check": {"kind": "plugin", "command": [CHECK_DUMMY, bad_exit, "flag"]}},
            {"name": "port", "hosts": ["h1"], **fast, "check": {"kind": "tcp", "port": port}},
        ],
    }  # fmt: skip


@pytest.fixture
async def listener() -> AsyncIterator[int]:
    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


@pytest.fixture
async def running(tmp_path: Path, listener: int) -> AsyncIterator[tuple[Manager, Path]]:
    source = tmp_path / "doc.json"
    source.write_text(json.dumps(document(listener)))
    settings = ManagerSettings(
        source=str(source),
        data_dir=tmp_path / "data",
        http_port=0,
        jobs_port=0,
        poll_interval=0.1,
        embedded_worker=True,
    )
    summaries: list[str] = []
    mgr = Manager(settings, on_event=summaries.append)
    ready = asyncio.Event()

    async def started() -> None:
        ready.set()

    task = asyncio.create_task(mgr.run(started))
    async with asyncio.timeout(10):
        await ready.wait()
    yield mgr, source
    mgr.stop()
    await asyncio.wait_for(task, 10)


async def states(mgr: Manager) -> dict[str, tuple[str, str]]:
    async with mgr.db.session() as session:
        saved = await store.list_check_states(session)
    return {key: ("PENDING" if s.pending else s.state.name, s.output) for key, s in saved.items()}


async def wait_for(mgr: Manager, expected: dict[str, str], limit: float = 15.0) -> None:
    """Poll the store until every named check has its expected state (bounded)."""
    seen: dict[str, tuple[str, str]] = {}
    try:
        async with asyncio.timeout(limit):
            while True:
                seen = await states(mgr)
                if all(seen.get(k, ("",))[0] == v for k, v in expected.items()):
                    return
                await asyncio.sleep(0.1)
    except TimeoutError:
        pytest.fail(f"states did not reach {expected}; last seen {seen}")


async def test_checks_run_and_follow_an_import(
    running: tuple[Manager, Path], listener: int
) -> None:
    mgr, source = running
    await wait_for(mgr, {"h1!good": "OK", "h1!bad": "CRITICAL", "h1!port": "OK"})
    saved = await states(mgr)
    assert saved["h1!bad"][1].startswith("CRITICAL")
    assert str(listener) in saved["h1!port"][1] or "TCP OK" in saved["h1!port"][1]

    source.write_text(json.dumps(document(listener, bad_exit="0")))  # apply_diff path
    await wait_for(mgr, {"h1!bad": "OK", "h1!good": "OK", "h1!port": "OK"})
    assert mgr.runner is not None
    assert mgr.runner.summary == "3 checks: 3 OK"


async def test_embedded_worker_key_is_private(running: tuple[Manager, Path]) -> None:
    mgr, _ = running
    key = mgr.settings.data_dir / "worker_ed25519_key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert mgr.runner is not None
    runner = mgr.runner
    await wait_until(lambda: runner.server.zone_online("core"), what="zone core online")
    assert [w.name for w in mgr.runner.server.workers()] == ["embedded"]
