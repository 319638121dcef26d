"""The standby's gate: reads pass, leader-only writes get 503 naming the leader, after the
caller is known."""

from __future__ import annotations

import httpx
from fastapi import Depends, FastAPI, Request

from watchkeeper.web.security import Principal, Role
from watchkeeper.web.standby import LEADER_HEADER, standby_gate


class _Security:
    """Knows one token."""

    async def authenticate(self, request: Request) -> Principal | None:
        if request.headers.get("authorization") == "Bearer good":
            return Principal(name="ops", role=Role.ADMIN, via="token")
        return None


def _app(*, leads: bool) -> httpx.AsyncClient:
    gate = standby_gate(
        _Security(),  # type: ignore[arg-type]
        lambda: leads,
        lambda: ("m1", "http://m1.example:8470"),
    )
    app = FastAPI(dependencies=[Depends(gate)])

    @app.get("/api/v1/checks")
    async def read() -> dict[str, bool]:
        return {"ok": True}

    @app.post("/api/v1/checks/x/check-now")
    async def act() -> dict[str, bool]:
        return {"ok": True}

    @app.post("/api/v1/config/candidates")
    async def push() -> dict[str, bool]:
        return {"ok": True}

    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


AUTH = {"Authorization": "Bearer good"}


async def test_a_standby_serves_reads_and_pushes() -> None:
    async with _app(leads=False) as client:
        assert (await client.get("/api/v1/checks", headers=AUTH)).status_code == 200
        assert (await client.post("/api/v1/config/candidates", headers=AUTH)).status_code == 200


async def test_a_standby_refuses_leader_work_naming_the_leader() -> None:
    async with _app(leads=False) as client:
        answer = await client.post("/api/v1/checks/x/check-now", headers=AUTH)
    assert answer.status_code == 503
    assert answer.headers[LEADER_HEADER] == "http://m1.example:8470"
    assert "the leader is m1 at http://m1.example:8470" in answer.json()["detail"]


async def test_an_anonymous_caller_learns_nothing_of_the_leader() -> None:
    async with _app(leads=False) as client:
        answer = await client.post("/api/v1/checks/x/check-now")
    assert answer.status_code == 401
    assert LEADER_HEADER not in answer.headers
    assert "m1" not in answer.text


async def test_the_leader_serves_everything() -> None:
    async with _app(leads=True) as client:
        answer = await client.post("/api/v1/checks/x/check-now", headers=AUTH)
    assert answer.status_code == 200
