"""The whole manager after the engine, on loopback: alarms, notifications, remediation, API.

A real `Manager` with its embedded worker runs a document whose TCP service is a listener
process. The test kills it: the check goes CRITICAL HARD, one alarm opens, the webhook
channel gets the PROBLEM, the remediation rule's action (run by the worker) starts the
listener again, the re-check is OK, the alarm resolves and the RECOVERY is delivered.
The operator actions go through the REST API: acknowledge, downtime, check now, and the
errors a bad request gets.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.listener import Service
from tests.fixtures.manager import api_client, running_manager
from tests.waiting import wait_until
from watchkeeper.runtime import Manager

CHECK_DUMMY = "/usr/lib/nagios/plugins/check_dummy"


class Receiver:
    """A webhook endpoint on 127.0.0.1 that keeps every JSON body it is sent."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        self.bodies.append(json.loads(await reader.readexactly(length)))
        writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    def kinds(self, key: str) -> list[str]:
        return [b["kind"] for b in self.bodies if b["key"] == key]

    async def aclose(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


def document(service: Service, hook: int) -> dict[str, Any]:
    fast = {"interval": "1s", "retry_interval": "1s", "max_attempts": 2, "timeout": "2s"}
    return {
        "schema": "watchkeeper/v1",
        "zones": [{"name": "core"}],
        "hosts": [{"name": "h1", "address": "127.0.0.1", "zone": "core"}],
        "services": [
            {"name": "web", "hosts": ["h1"], **fast, "notifications": ["ops"],
             "check": {"kind": "tcp", "port": service.port},
             "thresholds": {"time": {"warning": "5", "critical": "10"}}},
            {"name": "flag", "hosts": ["h1"], **fast, "notifications": ["ops"],
             "check": {"kind": "plugin", "command": [CHECK_DUMMY, "2", "flag is up"]}},
        ],
        "notifications": [
            {"name": "ops", "kind": "webhook", "url": f"http://127.0.0.1:{hook}/hook"},
        ],
        "remediations": [
            {"name": "restart-web", "when": {"service": "web"}, "cooldown": "0s",
             "action": {"kind": "command", "command": service.launch}},
        ],
    }  # fmt: skip


@dataclass
class Running:
    manager: Manager
    service: Service
    hook: Receiver
    api: httpx.AsyncClient


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    service, hook = Service(tmp_path), Receiver()
    port = await hook.start()
    service.start()
    source = tmp_path / "doc.json"
    source.write_text(json.dumps(document(service, port)))
    try:
        async with (
            running_manager(source, tmp_path / "data") as manager,
            api_client(manager) as api,
        ):
            yield Running(manager, service, hook, api)
    finally:
        service.stop()
        await hook.aclose()


async def state_of(api: httpx.AsyncClient, key: str) -> str | None:
    response = await api.get(f"/api/v1/checks/{key}")
    return response.json()["state"] if response.status_code == 200 else None


async def alarms_of(api: httpx.AsyncClient, key: str, *, open_only: bool) -> list[dict[str, Any]]:
    response = await api.get("/api/v1/alarms", params={"key": key, "open": open_only})
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


@pytest.mark.skipif(not Path(CHECK_DUMMY).exists(), reason="monitoring-plugins not installed")
async def test_a_failing_service_alarms_notifies_is_remediated_and_resolves(
    running: Running,
) -> None:
    api, hook = running.api, running.hook
    await wait_until(lambda: _is(api, "h1!web", "OK"), within=20, what="web OK")
    running.service.stop()

    # One alarm for the problem, and the channel told once.
    await wait_until(lambda: _has_alarm(api, "h1!web"), within=20, what="web alarm opened")
    # The action ran on the worker, the re-check was OK: the alarm resolves, RECOVERY sent.
    await wait_until(lambda: _is(api, "h1!web", "OK"), within=30, what="web remediated")
    await wait_until(
        lambda: "recovery" in hook.kinds("h1!web"), within=30, what="recovery delivered"
    )
    assert hook.kinds("h1!web") == ["problem", "recovery"]
    [alarm] = await alarms_of(api, "h1!web", open_only=False)
    assert alarm["phase"] == "resolved" and alarm["state"] == "CRITICAL"
    detail = (await api.get(f"/api/v1/alarms/{alarm['id']}")).json()
    assert detail["events"][0]["kind"] == "opened"

    jobs = (await api.get("/api/v1/remediation/jobs")).json()["items"]
    [job] = [j for j in jobs if j["target"] == "h1!web"]
    assert job["state"] == "succeeded" and job["worker"] == "embedded"
    steps = (await api.get(f"/api/v1/remediation/jobs/{job['id']}")).json()["audit"]
    assert [s["event"] for s in steps] == ["queued", "dispatched", "action_succeeded", "resolved"]
    assert "listener started" in job["output"]

    deliveries = await api.get("/api/v1/notifications/deliveries", params={"key": "h1!web"})
    assert [d["success"] for d in deliveries.json()["items"]] == [True, True]

    # The tcp check's connect time is a series with points, and /metrics publishes it. The
    # recorder writes about every second, so the series may come a moment after the flow.
    await wait_until(lambda: _has_points(api, "h1!web", "time"), within=10, what="points")
    [metric] = (await api.get("/api/v1/checks/h1!web/metrics")).json()["items"]
    assert metric["metric"] == "time"
    exposition = (await api.get("/metrics")).text
    assert 'watchkeeper_check_state{host="h1",service="web",zone="core"} 0' in exposition
    history = (await api.get("/api/v1/checks/h1!web/history")).json()["items"]
    assert {"CRITICAL", "OK"} <= {h["state"] for h in history}


@pytest.mark.skipif(not Path(CHECK_DUMMY).exists(), reason="monitoring-plugins not installed")
async def test_operators_acknowledge_schedule_downtime_and_check_now_through_the_api(
    running: Running,
) -> None:
    api, hook = running.api, running.hook
    key = "h1!flag"
    await wait_until(lambda: _has_alarm(api, key), within=20, what="flag alarm")
    await wait_until(lambda: "problem" in hook.kinds(key), within=20, what="problem sent")

    # A viewer reads but may not act; an operator acts, and is recorded as the author.
    viewer, operator = (
        await user(running, "vera", "viewer"),
        await user(running, "otto", "operator"),
    )
    assert (await viewer.get("/api/v1/alarms")).status_code == 200
    refused = await viewer.post(f"/api/v1/checks/{key}/acknowledge", json={"comment": "no"})
    assert refused.status_code == 403 and "operator" in refused.json()["detail"]
    assert (await viewer.post("/api/v1/downtimes", json={})).status_code == 403
    assert (await viewer.post(f"/api/v1/checks/{key}/check-now")).status_code == 403
    acked = await operator.post(f"/api/v1/checks/{key}/acknowledge", json={"comment": "on it"})
    assert acked.status_code == 200, acked.text
    await viewer.aclose()
    await operator.aclose()
    [alarm] = await alarms_of(api, key, open_only=True)
    assert alarm["phase"] == "acknowledged"
    assert alarm["acknowledgement"]["author"] == "otto"
    assert alarm["acknowledgement"]["comment"] == "on it"
    assert (await api.get(f"/api/v1/checks/{key}")).json()["silenced"].startswith("acknowledged")
    await wait_until(lambda: "acknowledgement" in hook.kinds(key), within=10, what="ack sent")

    now = time.time()
    made = await api.post(
        "/api/v1/downtimes",
        json={"host": "h1", "start": now, "end": now + 3600, "comment": "maintenance"},
    )
    assert made.status_code == 201, made.text
    downtime = made.json()
    assert [d["id"] for d in (await api.get("/api/v1/downtimes")).json()["items"]] == [
        downtime["id"]
    ]
    cancelled = await api.delete(f"/api/v1/downtimes/{downtime['id']}")
    assert cancelled.status_code == 200 and cancelled.json()["cancelled_at"] is not None
    assert (await api.get("/api/v1/downtimes")).json()["items"] == []

    assert (await api.post(f"/api/v1/checks/{key}/check-now")).status_code == 202

    # Bad requests: 4xx naming what is wrong, and nothing changes.
    backwards = await api.post(
        "/api/v1/downtimes", json={"host": "h1", "start": now, "end": now - 1, "comment": "x"}
    )
    assert backwards.status_code == 422 and "end" in backwards.json()["detail"]
    unknown_host = await api.post(
        "/api/v1/downtimes", json={"host": "nope", "start": now, "end": now + 1, "comment": "x"}
    )
    assert unknown_host.status_code == 422 and "host" in unknown_host.json()["detail"]
    refused = {
        "check now, unknown check": await api.post("/api/v1/checks/h1!nope/check-now"),
        "ack, unknown check": await api.post(
            "/api/v1/checks/h1!nope/acknowledge", json={"comment": "x"}
        ),
        "ack without comment": await api.post(f"/api/v1/checks/{key}/acknowledge", json={}),
        "cancel, unknown downtime": await api.delete("/api/v1/downtimes/999"),
        "unknown alarm": await api.get("/api/v1/alarms/999"),
        "run, unknown job": await api.post("/api/v1/remediation/jobs/999/run"),
    }
    codes = {what: response.status_code for what, response in refused.items()}
    assert codes == {
        "check now, unknown check": 404,
        "ack, unknown check": 404,
        "ack without comment": 422,
        "cancel, unknown downtime": 404,
        "unknown alarm": 404,
        "run, unknown job": 404,
    }
    assert (await api.get("/api/v1/downtimes")).json()["items"] == []
    async with httpx.AsyncClient(base_url=running.manager.url) as nobody:
        assert (await nobody.get("/api/v1/alarms")).status_code == 401


async def user(running: Running, name: str, role: str) -> httpx.AsyncClient:
    """A client logged in as a new user with ``role``, sending its CSRF token."""
    made = await running.api.post(
        "/api/v1/users", json={"name": name, "role": role, "password": f"{name}-secret-pw-1"}
    )
    assert made.status_code == 201, made.text
    client = httpx.AsyncClient(base_url=running.manager.url, timeout=10)
    login = await client.post(
        "/api/v1/session", json={"name": name, "password": f"{name}-secret-pw-1"}
    )
    assert login.status_code == 200, login.text
    client.headers["X-CSRF-Token"] = login.json()["csrf_token"]
    return client


async def _is(api: httpx.AsyncClient, key: str, state: str) -> bool:
    return await state_of(api, key) == state


async def _has_alarm(api: httpx.AsyncClient, key: str) -> bool:
    return bool(await alarms_of(api, key, open_only=True))


async def _has_points(api: httpx.AsyncClient, key: str, metric: str) -> bool:
    response = await api.get(f"/api/v1/checks/{key}/metrics/{metric}")
    return response.status_code == 200 and bool(response.json()["points"])
