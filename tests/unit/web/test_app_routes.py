"""Every route of the manager's app needs a login, but the login itself."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from watchkeeper import store
from watchkeeper.clock import utcnow
from watchkeeper.manager.intake import ConfigIntake
from watchkeeper.manager.ports import ManagerPorts
from watchkeeper.manager.runner import EngineRunner
from watchkeeper.manager.stages import Stages
from watchkeeper.web.app import create_app
from watchkeeper.web.ports import WebPorts

#: (method, path) that anonymous callers may reach: how they log in.
PUBLIC = {("POST", "/api/v1/session")}
#: Served but left out of the OpenAPI document.
HIDDEN = {("GET", "/metrics"), ("GET", "/api/v1/openapi.json")}


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[FastAPI]:
    db = store.Database.for_data_dir(tmp_path)
    await db.migrate()
    stages = Stages(db)
    runner = EngineRunner(db, lambda _: None, downstream=stages.downstream)  # type: ignore[arg-type,return-value]
    ports = ManagerPorts(runner, stages)
    yield create_app(
        db, ConfigIntake(db, clock=utcnow), "t" * 32, ports=WebPorts(read=ports, ops=ports)
    )
    await db.aclose()


def operations(app: FastAPI) -> set[tuple[str, str]]:
    """Every (method, path) of the OpenAPI document, path parameters filled in."""
    found = set()
    for path, item in app.openapi()["paths"].items():
        for method in item:
            found.add((method.upper(), re.sub(r"\{[^}]+\}", "1", path)))
    return found


async def test_anonymous_callers_get_401_from_every_route_but_the_login(app: FastAPI) -> None:
    routes = operations(app) | HIDDEN
    assert len(routes) > 30
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        answers = {
            (method, path): (await client.request(method, path, json={})).status_code
            for method, path in sorted(routes - PUBLIC)
        }
        login_form = await client.get("/login")
    assert {route: code for route, code in answers.items() if code != 401} == {}
    assert login_form.status_code == 200 and "password" in login_form.text


async def test_health_is_ok_while_the_database_answers_and_503_when_it_does_not(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": "Bearer " + "t" * 32}
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        ok = await client.get("/api/v1/health", headers=headers)
        assert (ok.status_code, ok.json()["status"]) == (200, "ok")

        async def unreachable(session: object) -> None:
            raise ConnectionRefusedError("connection refused")

        monkeypatch.setattr(store, "current_version", unreachable)
        down = await client.get("/api/v1/health", headers=headers)
    assert down.status_code == 503
    assert "the database does not answer: connection refused" in down.text
