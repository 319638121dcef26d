"""Every route of the API by every kind of caller, on a real manager with its embedded worker.

Callers: anonymous, a viewer, an operator and an admin (users logged in with a session and
sending their CSRF token), and a script holding the manager's token (an admin). The table
`CASES` names, for each (method, path) of the OpenAPI document plus ``/metrics`` and the
OpenAPI document itself, the least role allowed and the status an allowed call gets; a route
without a case fails the suite. Then the main reads are checked for their bodies: shapes,
totals, filters, pagination and the errors that name their argument.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.manager import api_client, running_manager
from tests.waiting import wait_until
from watchkeeper.runtime import Manager

CHECK_DUMMY = "/usr/lib/nagios/plugins/check_dummy"
pytestmark = pytest.mark.skipif(
    not Path(CHECK_DUMMY).exists(), reason="monitoring-plugins not installed"
)

CALLERS = ("anonymous", "viewer", "operator", "admin", "manager")
RANK = {"anonymous": -1, "viewer": 0, "operator": 1, "admin": 2, "manager": 2}
#: Served but left out of the OpenAPI document.
HIDDEN = {("GET", "/metrics"), ("GET", "/api/v1/openapi.json")}


def document(port: int, *, extra_host: bool = False) -> dict[str, Any]:
    fast = {"interval": "1s", "retry_interval": "1s", "max_attempts": 1, "timeout": "2s"}
    hosts = [{"name": "h1", "address": "127.0.0.1", "zone": "core", "labels": {"role": "web"}}]
    if extra_host:
        hosts.append({"name": "h2", "address": "127.0.0.2", "zone": "core"})
    return {
        "schema": "watchkeeper/v1",
        "zones": [{"name": "core"}],
        "hosts": hosts,
        "services": [
            {"name": "web", "hosts": ["h1"], **fast, "check": {"kind": "tcp", "port": port}},
            {"name": "flag", "hosts": ["h1"], **fast,
             "check": {"kind": "plugin", "command": [CHECK_DUMMY, "2", "flag is up"]}},
            {"name": "calm", "hosts": ["h1"], **fast,
             "check": {"kind": "plugin", "command": [CHECK_DUMMY, "0", "all calm"]}},
        ],
    }  # fmt: skip


@dataclass
class World:
    manager: Manager
    api: httpx.AsyncClient  # the manager's token
    port: int
    clients: dict[str, httpx.AsyncClient] = field(default_factory=dict)
    names: itertools.count[int] = field(default_factory=itertools.count)

    async def login(self, role: str) -> httpx.AsyncClient:
        """A new user of ``role``, logged in, sending its CSRF token."""
        name = f"{role}{next(self.names)}"
        password = f"{name}-secret-pw-1"
        made = await self.api.post(
            "/api/v1/users", json={"name": name, "role": role, "password": password}
        )
        assert made.status_code == 201, made.text
        client = httpx.AsyncClient(base_url=self.manager.url, timeout=10)
        login = await client.post("/api/v1/session", json={"name": name, "password": password})
        assert login.status_code == 200, login.text
        client.headers["X-CSRF-Token"] = login.json()["csrf_token"]
        return client

    def caller(self, who: str) -> httpx.AsyncClient:
        return self.api if who == "manager" else self.clients[who]


async def _accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    listener = await asyncio.start_server(_accept, "127.0.0.1", 0)
    port = int(listener.sockets[0].getsockname()[1])
    source = tmp_path / "doc.json"
    source.write_text(json.dumps(document(port)))
    async with running_manager(source, tmp_path / "data") as manager:
        api = api_client(manager)
        world = World(manager, api, port)
        try:
            world.clients["anonymous"] = httpx.AsyncClient(base_url=manager.url, timeout=10)
            for role in ("viewer", "operator", "admin"):
                world.clients[role] = await world.login(role)
            await wait_until(lambda: _alarm_open(api, "h1!flag"), within=20, what="flag alarm")
            await wait_until(lambda: _has_points(api), within=20, what="web's time points")
            await wait_until(lambda: _state(api, "h1!calm", "OK"), within=20, what="calm OK")
            yield world
        finally:
            for client in world.clients.values():
                await client.aclose()
            await api.aclose()
            listener.close()
            await listener.wait_closed()


async def _alarm_open(api: httpx.AsyncClient, key: str) -> bool:
    response = await api.get("/api/v1/alarms", params={"key": key})
    return response.status_code == 200 and bool(response.json())


async def _has_points(api: httpx.AsyncClient) -> bool:
    response = await api.get("/api/v1/checks/h1!web/metrics/time")
    return response.status_code == 200 and bool(response.json()["points"])


async def _state(api: httpx.AsyncClient, key: str, state: str) -> bool:
    response = await api.get(f"/api/v1/checks/{key}")
    return response.status_code == 200 and response.json()["state"] == state


# --- the table of cases ---------------------------------------------------------------------

Prepare = Callable[[World, str], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Case:
    """The least role allowed, the path with its parameters filled, what an allowed call gets."""

    role: str
    path: str
    ok: int | tuple[int, ...] = 200
    body: Any = None
    content: bytes | None = None
    #: Fills placeholders of ``path`` per caller (objects each allowed call consumes).
    prepare: Prepare | None = None
    #: The allowed call uses a fresh login of the caller's role (it ends the session).
    fresh: bool = False


async def own_token(world: World, who: str) -> dict[str, Any]:
    if who == "anonymous":
        return {"token_id": 999_999}
    client = world.api if who == "manager" else world.caller(who)
    made = await client.post("/api/v1/tokens", json={"name": f"t{next(world.names)}"})
    if made.status_code != 201:  # the manager's token is nobody's: an admin makes one
        made = await world.clients["admin"].post(
            "/api/v1/tokens", json={"name": f"t{next(world.names)}"}
        )
    assert made.status_code == 201, made.text
    return {"token_id": made.json()["id"]}


async def target_user(world: World, who: str) -> dict[str, Any]:
    name = f"target{next(world.names)}"
    made = await world.api.post(
        "/api/v1/users", json={"name": name, "role": "viewer", "password": f"{name}-pw-secret"}
    )
    assert made.status_code == 201, made.text
    return {"name": name}


async def downtime(world: World, who: str) -> dict[str, Any]:
    now = time.time()
    made = await world.api.post(
        "/api/v1/downtimes",
        json={"host": "h1", "service": "calm", "start": now, "end": now + 3600, "comment": "x"},
    )
    assert made.status_code == 201, made.text
    return {"downtime_id": made.json()["id"]}


async def alarm(world: World, who: str) -> dict[str, Any]:
    [found] = (await world.api.get("/api/v1/alarms", params={"key": "h1!flag"})).json()["items"]
    return {"alarm_id": found["id"]}


def cases(world: World) -> dict[tuple[str, str], Case]:
    source = world.manager.settings.source
    now = time.time()
    return {
        ("GET", "/api/v1/config/current"): Case("viewer", "/api/v1/config/current"),
        ("GET", "/api/v1/config/versions"): Case("viewer", "/api/v1/config/versions"),
        ("GET", "/api/v1/config/versions/{version_id}"): Case(
            "viewer", "/api/v1/config/versions/1"
        ),
        ("GET", "/api/v1/config/rejected"): Case("viewer", "/api/v1/config/rejected"),
        ("GET", "/api/v1/config/diff"): Case("viewer", "/api/v1/config/diff?from=1&to=1"),
        ("GET", "/api/v1/sources"): Case("viewer", "/api/v1/sources"),
        ("GET", "/api/v1/health"): Case("viewer", "/api/v1/health"),
        ("GET", "/api/v1/cluster"): Case("viewer", "/api/v1/cluster"),
        ("POST", "/api/v1/config/candidates"): Case(
            "admin", "/api/v1/config/candidates", ok=200, content=Path(source).read_bytes()
        ),
        ("GET", "/api/v1/session"): Case("viewer", "/api/v1/session"),
        ("DELETE", "/api/v1/session"): Case("viewer", "/api/v1/session", ok=204, fresh=True),
        ("GET", "/api/v1/tokens"): Case("viewer", "/api/v1/tokens"),
        ("POST", "/api/v1/tokens"): Case(
            "viewer", "/api/v1/tokens", ok=(201, 422), body={"name": "mine"}
        ),
        ("DELETE", "/api/v1/tokens/{token_id}"): Case(
            "viewer", "/api/v1/tokens/{token_id}", prepare=own_token
        ),
        ("GET", "/api/v1/users"): Case("admin", "/api/v1/users"),
        ("POST", "/api/v1/users"): Case(
            "admin", "/api/v1/users", ok=(201, 409), body={"name": "newbie", "role": "viewer"}
        ),
        ("PATCH", "/api/v1/users/{name}"): Case(
            "admin", "/api/v1/users/{name}", body={"role": "operator"}, prepare=target_user
        ),
        ("DELETE", "/api/v1/users/{name}"): Case(
            "admin", "/api/v1/users/{name}", ok=204, prepare=target_user
        ),
        ("GET", "/api/v1/checks"): Case("viewer", "/api/v1/checks"),
        ("GET", "/api/v1/checks/{key}"): Case("viewer", "/api/v1/checks/h1!flag"),
        ("POST", "/api/v1/checks/{key}/check-now"): Case(
            "operator", "/api/v1/checks/h1!calm/check-now", ok=202
        ),
        ("GET", "/api/v1/checks/{key}/history"): Case("viewer", "/api/v1/checks/h1!flag/history"),
        ("GET", "/api/v1/checks/{key}/metrics"): Case("viewer", "/api/v1/checks/h1!web/metrics"),
        ("GET", "/api/v1/checks/{key}/metrics/{metric}"): Case(
            "viewer", "/api/v1/checks/h1!web/metrics/time"
        ),
        ("GET", "/api/v1/alarms"): Case("viewer", "/api/v1/alarms"),
        ("GET", "/api/v1/alarms/{alarm_id}"): Case(
            "viewer", "/api/v1/alarms/{alarm_id}", prepare=alarm
        ),
        ("POST", "/api/v1/checks/{key}/acknowledge"): Case(
            "operator", "/api/v1/checks/h1!flag/acknowledge", body={"comment": "on it"}
        ),
        # Allowed callers after the first find nothing acknowledged left: 409.
        ("DELETE", "/api/v1/checks/{key}/acknowledge"): Case(
            "operator", "/api/v1/checks/h1!flag/acknowledge", ok=(200, 409)
        ),
        ("GET", "/api/v1/downtimes"): Case("viewer", "/api/v1/downtimes"),
        ("POST", "/api/v1/downtimes"): Case(
            "operator",
            "/api/v1/downtimes",
            ok=201,
            body={"host": "h1", "start": now, "end": now + 60, "comment": "work"},
        ),
        ("DELETE", "/api/v1/downtimes/{downtime_id}"): Case(
            "operator", "/api/v1/downtimes/{downtime_id}", prepare=downtime
        ),
        ("GET", "/api/v1/remediation/jobs"): Case("viewer", "/api/v1/remediation/jobs"),
        # No remediation rule in this document: an allowed caller learns there is no job 1.
        ("GET", "/api/v1/remediation/jobs/{job_id}"): Case(
            "viewer", "/api/v1/remediation/jobs/1", ok=404
        ),
        ("POST", "/api/v1/remediation/jobs/{job_id}/run"): Case(
            "operator", "/api/v1/remediation/jobs/1/run", ok=404
        ),
        ("POST", "/api/v1/remediation/jobs/{job_id}/skip"): Case(
            "operator", "/api/v1/remediation/jobs/1/skip", ok=404, body={"reason": "no"}
        ),
        ("GET", "/api/v1/remediation/audit"): Case("viewer", "/api/v1/remediation/audit"),
        ("GET", "/api/v1/notifications/deliveries"): Case(
            "viewer", "/api/v1/notifications/deliveries"
        ),
        ("GET", "/api/v1/overview"): Case("viewer", "/api/v1/overview"),
        ("GET", "/api/v1/hosts"): Case("viewer", "/api/v1/hosts"),
        ("GET", "/api/v1/hosts/{name}"): Case("viewer", "/api/v1/hosts/h1"),
        ("GET", "/api/v1/zones"): Case("viewer", "/api/v1/zones"),
        ("GET", "/api/v1/workers"): Case("viewer", "/api/v1/workers"),
        ("GET", "/api/v1/infra/platforms"): Case("viewer", "/api/v1/infra/platforms"),
        ("GET", "/api/v1/infra/resources"): Case("viewer", "/api/v1/infra/resources"),
        ("GET", "/api/v1/infra/plan"): Case("viewer", "/api/v1/infra/plan"),
        ("GET", "/api/v1/infra/operations"): Case("viewer", "/api/v1/infra/operations"),
        # No infrastructure in this document: no change 1, no such machine or platform.
        ("GET", "/api/v1/infra/operations/{job_id}"): Case(
            "viewer", "/api/v1/infra/operations/1", ok=404
        ),
        ("POST", "/api/v1/infra/operations/{job_id}/confirm"): Case(
            "operator", "/api/v1/infra/operations/1/confirm", ok=404
        ),
        ("POST", "/api/v1/infra/operations/{job_id}/skip"): Case(
            "operator", "/api/v1/infra/operations/1/skip", ok=404
        ),
        ("POST", "/api/v1/infra/apply"): Case("operator", "/api/v1/infra/apply", ok=202),
        ("POST", "/api/v1/infra/unprotect"): Case(
            "operator", "/api/v1/infra/unprotect", ok=404, body={"target": "h1"}
        ),
        ("POST", "/api/v1/infra/adopt"): Case(
            "operator", "/api/v1/infra/adopt", ok=404, body={"target": "i-0abc"}
        ),
        ("POST", "/api/v1/infra/platforms/{name}/accept"): Case(
            "operator", "/api/v1/infra/platforms/lab/accept", ok=404
        ),
        ("POST", "/api/v1/infra/hold/confirm"): Case(
            "operator", "/api/v1/infra/hold/confirm", ok=404
        ),
        ("GET", "/api/v1/deploy/deployments"): Case("viewer", "/api/v1/deploy/deployments"),
        # No deployment in this document: no deployment base, no agent key waits.
        ("GET", "/api/v1/deploy/deployments/{name}"): Case(
            "viewer", "/api/v1/deploy/deployments/base", ok=404
        ),
        ("POST", "/api/v1/deploy/deployments/{name}/check"): Case(
            "operator", "/api/v1/deploy/deployments/base/check", ok=404
        ),
        ("POST", "/api/v1/deploy/deployments/{name}/apply"): Case(
            "operator", "/api/v1/deploy/deployments/base/apply", ok=404, body={"host": "h1"}
        ),
        ("GET", "/api/v1/deploy/agent-keys"): Case("viewer", "/api/v1/deploy/agent-keys"),
        ("POST", "/api/v1/deploy/agent-keys/{host}/approve"): Case(
            "admin", "/api/v1/deploy/agent-keys/h1/approve", ok=404
        ),
        ("POST", "/api/v1/deploy/agent-keys/{host}/reject"): Case(
            "admin", "/api/v1/deploy/agent-keys/h1/reject", ok=404
        ),
        ("GET", "/metrics"): Case("viewer", "/metrics"),
        ("GET", "/api/v1/openapi.json"): Case("viewer", "/api/v1/openapi.json"),
    }


#: The login itself: anonymous callers may post to it (tested on its own below).
PUBLIC = {("POST", "/api/v1/session")}


async def routes(world: World) -> set[tuple[str, str]]:
    schema = (await world.api.get("/api/v1/openapi.json")).json()
    return {(m.upper(), path) for path, item in schema["paths"].items() for m in item} | HIDDEN


async def call(world: World, who: str, method: str, case: Case) -> httpx.Response:
    values = await case.prepare(world, who) if case.prepare is not None else {}
    path = case.path.format(**values)
    client = world.caller(who)
    fresh = case.fresh and who not in ("anonymous", "manager") and RANK[who] >= RANK[case.role]
    if fresh:
        client = await world.login(who)
    try:
        return await client.request(
            method,
            path,
            json=case.body if case.content is None else None,
            content=case.content,
        )
    finally:
        if fresh:
            await client.aclose()


async def test_every_route_answers_each_caller_by_role(world: World) -> None:
    table = cases(world)
    served = await routes(world)
    assert len(served) > 40
    assert sorted(served - PUBLIC - table.keys()) == [], "routes without a case"
    assert sorted(table.keys() - served) == [], "cases of routes that are gone"

    wrong: list[str] = []
    for (method, template), case in sorted(table.items()):
        for who in CALLERS:
            response = await call(world, who, method, case)
            if who == "anonymous":
                expected: tuple[int, ...] = (401,)
            elif RANK[who] < RANK[case.role]:
                expected = (403,)
            else:
                expected = case.ok if isinstance(case.ok, tuple) else (case.ok,)
            if response.status_code not in expected:
                wrong.append(
                    f"{method} {template} as {who}: {response.status_code} not in {expected}"
                    f" ({response.text[:120]})"
                )
            elif response.status_code in (401, 403):
                assert isinstance(response.json()["detail"], str)
    assert wrong == []


async def test_the_login_is_open_to_anonymous_callers_only_with_a_password(
    world: World,
) -> None:
    anonymous = world.clients["anonymous"]
    refused = await anonymous.post("/api/v1/session", json={"name": "admin", "password": "no"})
    assert refused.status_code == 401 and refused.json() == {
        "detail": "wrong user name or password"
    }
    password = world.manager.first_admin_password
    assert password is not None
    accepted = await anonymous.post("/api/v1/session", json={"name": "admin", "password": password})
    assert accepted.status_code == 200 and accepted.json()["role"] == "admin"


async def test_the_overview_counts_and_lists_problems_first(world: World) -> None:
    viewer = world.clients["viewer"]
    overview = (await viewer.get("/api/v1/overview")).json()
    assert overview["services"] == {
        "OK": 2, "WARNING": 0, "CRITICAL": 1, "UNKNOWN": 0, "PENDING": 0
    }  # fmt: skip
    assert overview["hosts"] == {"UP": 1, "DOWN": 0, "UNREACHABLE": 0, "PENDING": 0}
    assert overview["unhandled"] == 1
    [problem] = overview["problems"]
    assert problem["key"] == "h1!flag" and problem["state"] == "CRITICAL"
    assert problem["state_type"] == "HARD" and problem["alarm_id"] is not None
    assert problem["output"] == "CRITICAL: flag is up" and not problem["acknowledged"]

    operator = world.clients["operator"]
    acked = await operator.post("/api/v1/checks/h1!flag/acknowledge", json={"comment": "mine"})
    assert acked.status_code == 200
    overview = (await viewer.get("/api/v1/overview")).json()
    assert overview["unhandled"] == 0 and overview["problems"][0]["acknowledged"]
    assert overview["problems"][0]["silenced"].startswith("acknowledged by operator")


async def test_the_check_list_filters_sorts_and_pages(world: World) -> None:
    viewer = world.clients["viewer"]

    async def checks(**params: Any) -> dict[str, Any]:
        response = await viewer.get("/api/v1/checks", params=params)
        assert response.status_code == 200, response.text
        return dict(response.json())

    everything = await checks()
    assert (everything["total"], everything["offset"], everything["limit"]) == (3, 0, 500)
    assert [c["key"] for c in everything["items"]] == ["h1!calm", "h1!flag", "h1!web"]
    page = await checks(limit=1, offset=1)
    assert page["total"] == 3 and [c["key"] for c in page["items"]] == ["h1!flag"]
    assert [c["key"] for c in (await checks(q="FLAG IS", state="CRITICAL"))["items"]] == ["h1!flag"]
    assert (await checks(q="flag", state="OK"))["total"] == 0
    assert (await checks(state="OK,CRITICAL"))["total"] == 3
    assert (await checks(sort="severity"))["items"][0]["key"] == "h1!flag"
    assert [c["key"] for c in (await checks(unhandled=True))["items"]] == ["h1!flag"]
    assert (await checks(zone="elsewhere"))["total"] == 0
    assert (await checks(host="h1", problems=True))["total"] == 1

    bad_state = await viewer.get("/api/v1/checks", params={"state": "SIDEWAYS"})
    assert bad_state.status_code == 422
    assert bad_state.json()["detail"].startswith("state: unknown 'SIDEWAYS'")
    bad_sort = await viewer.get("/api/v1/checks", params={"sort": "colour"})
    assert bad_sort.status_code == 422 and "sort" in json.dumps(bad_sort.json()["detail"])


async def test_hosts_zones_and_workers(world: World) -> None:
    viewer = world.clients["viewer"]
    hosts = (await viewer.get("/api/v1/hosts")).json()
    assert hosts["total"] == 1 and (hosts["offset"], hosts["limit"]) == (0, 100)
    [h1] = hosts["items"]
    assert (h1["name"], h1["address"], h1["zone"], h1["state"]) == ("h1", "127.0.0.1", "core", "UP")
    assert h1["labels"] == {"role": "web"} and h1["services"]["CRITICAL"] == 1
    assert (await viewer.get("/api/v1/hosts", params={"q": "127.0"})).json()["total"] == 1
    assert (await viewer.get("/api/v1/hosts", params={"state": "DOWN"})).json()["total"] == 0
    assert (await viewer.get("/api/v1/hosts", params={"zone": "core"})).json()["total"] == 1
    bad = await viewer.get("/api/v1/hosts", params={"state": "OK"})
    assert bad.status_code == 422 and bad.json()["detail"].startswith("state: ")

    detail = (await viewer.get("/api/v1/hosts/h1")).json()
    assert [c["key"] for c in detail["checks"]] == ["h1!calm", "h1!flag", "h1!web"]
    missing = await viewer.get("/api/v1/hosts/nowhere")
    assert missing.status_code == 404 and missing.json() == {"detail": "no host 'nowhere'"}

    zones = (await viewer.get("/api/v1/zones")).json()
    [core] = zones["items"]
    assert zones["total"] == 1 and (zones["offset"], zones["limit"]) == (0, 1)
    assert {k: v for k, v in core.items() if k not in ("capacity", "in_use")} == {
        "name": "core", "hosts": 1, "checks": 3, "workers_online": 1, "health": "online",
        "no_worker_since": None, "not_run": 0,
        "warnings": ["zone core has 1 worker: no failover"],  # the embedded worker alone
    }  # fmt: skip
    assert core["capacity"] >= 1 and 0 <= core["in_use"] <= core["capacity"]
    [worker] = (await viewer.get("/api/v1/workers")).json()["items"]
    assert worker["name"] == "embedded" and "core" in worker["zones"]
    assert worker["accepting"] and worker["concurrency"] >= 1 and worker["last_seen"] > 0
    assert {"labels", "agent_for", "in_flight", "load", "reason", "draining", "version",
            "claimed_zones", "capacity"} <= worker.keys()  # fmt: skip


async def test_the_config_diff_between_two_versions(world: World) -> None:
    admin, viewer = world.clients["admin"], world.clients["viewer"]
    changed = document(world.port, extra_host=True)
    changed["services"][2]["check"]["command"][2] = "still calm"
    pushed = await admin.post("/api/v1/config/candidates", content=json.dumps(changed).encode())
    assert pushed.status_code == 201, pushed.text
    version = pushed.json()["version"]

    diff = await viewer.get("/api/v1/config/diff", params={"from": 1, "to": version})
    assert diff.status_code == 200, diff.text
    body = diff.json()
    assert (body["from_version"], body["to_version"], body["fields"]) == (1, version, [])
    hosts, services = body["sections"]
    assert (hosts["section"], hosts["added"], hosts["removed"]) == ("hosts", ["h2"], [])
    assert services["changed"] == [
        {"name": "calm", "fields": [{"pointer": "/check/command/2", "change": "changed",
                                      "old": "all calm", "new": "still calm"}]}
    ]  # fmt: skip
    same = (await viewer.get("/api/v1/config/diff", params={"from": 1, "to": 1})).json()
    assert same["sections"] == [] and same["fields"] == []
    missing = await viewer.get("/api/v1/config/diff", params={"from": 1, "to": 99})
    assert missing.status_code == 404 and missing.json() == {"detail": "to: no version 99"}
    no_from = await viewer.get("/api/v1/config/diff", params={"to": 1})
    assert no_from.status_code == 422 and "from" in json.dumps(no_from.json()["detail"])
