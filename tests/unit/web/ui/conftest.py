"""The manager's app with a runner fed results by hand, and logged-in clients per role.

Checks run through a fake job server whose jobs the test answers (tests/fixtures/engine.py);
users log in through ``/api/v1/session`` like a browser's script would, so pages see a
session with a CSRF token.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.engine import FakeServer, Fed, fed_runner, worker_info
from watchkeeper import store
from watchkeeper.clock import utcnow
from watchkeeper.manager.intake import ConfigIntake
from watchkeeper.web.app import create_app
from watchkeeper.web.security import Passwords, Role, Security, accounts

FAST = Passwords(time_cost=1, memory_cost=8, parallelism=1)
PASSWORD = "correct horse battery"
MANAGER = "m" * 32


def document(services: int = 3) -> dict[str, Any]:
    """Hosts web1 (with a host check) and db1; ``services`` numbered services on web1."""
    return {
        "schema": "watchkeeper/v1",
        "zones": [{"name": "core"}, {"name": "dmz"}],
        "hosts": [
            {"name": "web1", "address": "10.0.0.1", "zone": "core", "labels": {"role": "web"},
             "check": {"check": {"kind": "tcp", "port": 22}, "interval": "1d",
                       "max_attempts": 1}},
            {"name": "db1", "address": "10.0.1.1", "zone": "dmz"},
        ],
        "services": [
            {"name": "ssh", "hosts": ["web1", "db1"], "interval": "1d", "max_attempts": 1,
             "check": {"kind": "tcp", "port": 22}},
            *({"name": f"svc{n:05d}", "hosts": ["web1"], "interval": "1d", "max_attempts": 1,
               "check": {"kind": "tcp", "port": 80}} for n in range(services)),
        ],
    }  # fmt: skip


@dataclass
class Env(Fed):
    http: httpx.AsyncClient = field(kw_only=True)

    async def login(self, role: Role) -> str:
        """Log the client in as a new user with ``role``; returns its CSRF token."""
        name = f"{role.value}-user"
        await accounts.create_user(self.db, name=name, role=role, password=PASSWORD, passwords=FAST)
        answer = await self.http.post("/api/v1/session", json={"name": name, "password": PASSWORD})
        assert answer.status_code == 200, answer.text
        token: str = answer.json()["csrf_token"]
        return token


async def build(tmp_path: Path, services: int = 3) -> AsyncIterator[Env]:
    db = store.Database.for_data_dir(tmp_path)
    await db.migrate()
    workers = [worker_info("w1", ("core",), labels={"site": "a"}, in_flight=1, load=0.25)]
    fed = await fed_runner(db, document(services), FakeServer(workers))
    security = Security(db, manager_token=MANAGER, passwords=FAST)
    app = create_app(
        db, ConfigIntake(db, clock=utcnow), MANAGER, ports=fed.web_ports, security=security
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        yield Env(db, fed.runner, fed.stages, fed.server, fed.clock, http=http)
    await db.aclose()


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async for made in build(tmp_path):
        yield made
