"""The manager end to end on loopback: file source, import, API with token, push, rejection."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.waiting import wait_until
from watchkeeper.addresses import parse_listen
from watchkeeper.errors import UsageError
from watchkeeper.runtime import Manager, ManagerSettings, bind_listener


def document(port: int = 22) -> dict[str, Any]:
    return {
        "schema": "watchkeeper/v1",
        "zones": [{"name": "core"}],
        "hosts": [{"name": "h1", "address": "127.0.0.1", "zone": "core"}],
        "services": [{"name": "ssh", "hosts": ["h1"], "check": {"kind": "tcp", "port": port}}],
    }


eventually = wait_until


@pytest.fixture
async def manager(tmp_path: Path) -> AsyncIterator[tuple[Manager, Path]]:
    source = tmp_path / "doc.json"
    source.write_text(json.dumps(document()))
    settings = ManagerSettings(
        source=str(source),
        data_dir=tmp_path / "data",
        http_port=0,
        jobs_port=0,
        poll_interval=0.1,
    )
    mgr = Manager(settings)
    ready = asyncio.Event()

    async def started() -> None:
        ready.set()

    task = asyncio.create_task(mgr.run(started))
    async with asyncio.timeout(10):
        await ready.wait()
    yield mgr, source
    mgr.stop()
    await asyncio.wait_for(task, 10)


async def test_api_refuses_requests_without_the_token(manager: tuple[Manager, Path]) -> None:
    mgr, _ = manager
    async with httpx.AsyncClient(base_url=mgr.url) as client:
        for path in ("/api/v1/config/current", "/api/v1/openapi.json", "/api/v1/sources"):
            response = await client.get(path)
            assert response.status_code == 401, path
            assert response.headers["www-authenticate"] == "Bearer"
        wrong = await client.get("/api/v1/config/current", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
    token_file = mgr.settings.data_dir / "api-token"
    assert token_file.stat().st_mode & 0o777 == 0o600


def replace(path: Path, text: str) -> None:
    """Write a new version whole, as publishers should: a poll never sees half of it."""
    partial = path.with_suffix(".partial")
    partial.write_text(text)
    partial.replace(path)


async def test_polls_imports_and_serves(manager: tuple[Manager, Path]) -> None:
    mgr, source = manager
    auth = {"Authorization": f"Bearer {mgr.token}"}
    async with httpx.AsyncClient(base_url=mgr.url, headers=auth) as client:

        async def version_is(n: int) -> bool:
            response = await client.get("/api/v1/config/current")
            return response.status_code == 200 and response.json()["id"] == n

        await eventually(lambda: version_is(1))
        openapi = (await client.get("/api/v1/openapi.json")).json()
        assert "/api/v1/config/candidates" in openapi["paths"]

        replace(source, json.dumps(document(port=2222)))  # the file changes: re-read
        await eventually(lambda: version_is(2))
        detail = (await client.get("/api/v1/config/versions/2")).json()
        assert detail["document"]["services"][0]["check"]["port"] == 2222
        assert detail["summary"]["checks"] == {"added": 0, "changed": 1, "removed": 0}

        replace(source, '{"schema": "watchkeeper/v1", "hosts": [{"name": "x"}]}')

        async def rejected() -> bool:
            return bool((await client.get("/api/v1/config/rejected")).json()["items"])

        await eventually(rejected)
        problems = (await client.get("/api/v1/config/rejected")).json()["items"][0]["problems"]
        assert {p["pointer"] for p in problems} == {"/hosts/0/address", "/hosts/0/zone"}
        assert await version_is(2)  # the running configuration is untouched

        sources = (await client.get("/api/v1/sources")).json()["items"]
        assert sources[0]["name"] == str(source)
        assert sources[0]["ok"] is True  # a bad document is not a failing source


async def test_push_goes_through_the_same_intake(manager: tuple[Manager, Path]) -> None:
    mgr, _ = manager
    auth = {"Authorization": f"Bearer {mgr.token}"}
    async with httpx.AsyncClient(base_url=mgr.url, headers=auth) as client:
        await eventually(lambda: _status_is(client.get("/api/v1/config/current"), 200))
        bad = document()
        bad["services"][0]["check"]["port"] = 70000
        response = await client.post("/api/v1/config/candidates", content=json.dumps(bad))
        assert response.status_code == 422
        assert response.json()["problems"][0]["pointer"] == "/services/0/check/port"

        response = await client.post(
            "/api/v1/config/candidates", content=json.dumps(document(port=2200))
        )
        assert response.status_code == 201
        assert response.json()["created"] is True
        version = response.json()["version"]

        again = await client.post(
            "/api/v1/config/candidates", content=json.dumps(document(port=2200))
        )
        assert again.status_code == 200
        assert (again.json()["created"], again.json()["version"]) == (False, version)

        not_json = await client.post("/api/v1/config/candidates", content=b"{nope")
        assert not_json.status_code == 422
        assert not_json.json()["problems"][0]["message"].startswith("not valid JSON")


async def _status_is(request: Awaitable[httpx.Response], code: int) -> bool:
    return (await request).status_code == code


def test_parse_listen() -> None:
    assert parse_listen("127.0.0.1:8470") == ("127.0.0.1", 8470)
    assert parse_listen("[::1]:9000") == ("::1", 9000)
    for bad in ("8470", "127.0.0.1:", "host:99999", ":80"):
        with pytest.raises(UsageError, match="--http"):
            parse_listen(bad)


def test_busy_port_is_a_clear_error() -> None:
    first = bind_listener("127.0.0.1", 0)
    try:
        with pytest.raises(UsageError, match=r"cannot listen on 127\.0\.0\.1"):
            bind_listener("127.0.0.1", first.getsockname()[1])
    finally:
        first.close()


def _port_running(mgr: Manager) -> int | None:
    runner = mgr.runner
    if runner is None or "h1!ssh" not in runner.engine.scheduler:
        return None
    return int(runner.engine.scheduler.record("h1!ssh").spec["check"]["port"])


@pytest.mark.parametrize("path", ["cli import", "push", "poll"])
async def test_the_running_manager_runs_what_the_store_says_is_current(
    manager: tuple[Manager, Path], tmp_path: Path, path: str
) -> None:
    mgr, source = manager
    await eventually(lambda: _port_running(mgr) == 22, what="the first version running")
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(document(2222)))
    if path == "cli import":  # another process writes the store; the source is unchanged
        done = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "watchkeeper", "import", str(changed),
            "--data-dir", str(mgr.settings.data_dir),
        )  # fmt: skip
        assert await done.wait() == 0
    elif path == "push":
        headers = {"Authorization": f"Bearer {mgr.token}"}
        async with httpx.AsyncClient(base_url=mgr.url, headers=headers) as client:
            pushed = await client.post("/api/v1/config/candidates", content=changed.read_bytes())
            assert pushed.status_code == 201
    else:
        source.write_text(changed.read_text())
    # Within a poll interval or so (0.1 s here; the wait is bounded for a loaded machine).
    await eventually(lambda: _port_running(mgr) == 2222, within=5, what="version 2 running")
    headers = {"Authorization": f"Bearer {mgr.token}"}
    async with httpx.AsyncClient(base_url=mgr.url, headers=headers) as client:
        current = (await client.get("/api/v1/config/current")).json()
    assert current["id"] == 2
