"""``/api/v1/deploy`` and the deployments part of the infrastructure page, on a real
`DeployView` over a deployment stage and a SQLite store: roles (viewers read, operators
check and apply, admins alone approve keys), the answers, the 404s naming what is
unknown, OpenAPI, and an approved key enrolled as the host's agent (``worker-key list``).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fixtures.deploy_web import HALT, MANAGER, REFUSED, WAITING, DeployEnv, build
from watchkeeper import store
from watchkeeper.cli import build_parser
from watchkeeper.logs import NOTICE
from watchkeeper.web.security import Role

HTMX = {"HX-Request": "true"}
READS = [
    "/api/v1/deploy/deployments",
    "/api/v1/deploy/deployments/base",
    "/api/v1/deploy/agent-keys",
]
ASKS = [
    ("/api/v1/deploy/deployments/base/check", None),
    ("/api/v1/deploy/deployments/motd/apply", {"host": "legacy3"}),
]
ADMIN = [
    "/api/v1/deploy/agent-keys/legacy2/approve",
    "/api/v1/deploy/agent-keys/legacy1/reject",
]
TEMPLATES = {
    ("GET", "/api/v1/deploy/deployments"),
    ("GET", "/api/v1/deploy/deployments/{name}"),
    ("POST", "/api/v1/deploy/deployments/{name}/check"),
    ("POST", "/api/v1/deploy/deployments/{name}/apply"),
    ("GET", "/api/v1/deploy/agent-keys"),
    ("POST", "/api/v1/deploy/agent-keys/{host}/approve"),
    ("POST", "/api/v1/deploy/agent-keys/{host}/reject"),
}


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[DeployEnv]:
    async for made in build(tmp_path):
        yield made


def as_manager() -> dict[str, str]:
    return {"Authorization": f"Bearer {MANAGER}"}


async def test_anonymous_callers_get_401(env: DeployEnv) -> None:
    for path in READS:
        assert (await env.http.get(path)).status_code == 401, path
    for path, body in ASKS:
        assert (await env.http.post(path, json=body)).status_code == 401, path
    for path in ADMIN:
        assert (await env.http.post(path)).status_code == 401, path


async def test_a_viewer_reads_and_may_neither_apply_nor_approve(env: DeployEnv) -> None:
    await env.login(Role.VIEWER)
    for path in READS:
        answer = await env.http.get(path)
        assert answer.status_code == 200, (path, answer.text)
    for path, body in ASKS:
        answer = await env.http.post(path, json=body)
        assert answer.status_code == 403 and "operator" in answer.json()["detail"], path
    for path in ADMIN:
        answer = await env.http.post(path)
        assert answer.status_code == 403 and "admin" in answer.json()["detail"], path
    assert len(await env.view.pending_keys()) == 2  # nothing approved or rejected


async def test_an_operator_checks_and_applies_but_may_not_approve(env: DeployEnv) -> None:
    await env.login(Role.OPERATOR)
    checked = await env.http.post("/api/v1/deploy/deployments/base/check")
    assert checked.status_code == 202 and checked.json() == {"hosts": ["legacy1", "legacy2"]}
    applied = await env.http.post("/api/v1/deploy/deployments/motd/apply", json={"host": "legacy3"})
    assert applied.status_code == 202 and applied.json() == {"hosts": ["legacy3"]}
    for path in ADMIN:
        answer = await env.http.post(path)
        assert answer.status_code == 403 and "admin" in answer.json()["detail"], path
    # The stage carries the asks out at its next step: the apply resumes the halted rollout.
    assert env.view.deployment("motd")["halted"] == HALT
    await env.service.step()
    assert env.view.deployment("motd")["halted"] is None
    rollout = env.service.rollouts["motd"]
    assert rollout.apply_requested == {"legacy3"} and "legacy3" in rollout.check_requested
    assert env.service.rollouts["base"].check_requested == {"legacy1", "legacy2"}


async def test_the_deployments_and_their_hosts(env: DeployEnv) -> None:
    page = (await env.http.get("/api/v1/deploy/deployments", headers=as_manager())).json()
    assert page["total"] == 2 and [d["name"] for d in page["items"]] == ["base", "motd"]
    base, motd = page["items"]
    assert (base["drift"], base["every"], base["max_concurrent"], base["max_failures"]) == (
        "repair", 600.0, 5, 1
    )  # fmt: skip
    assert base["halted"] is None and motd["halted"] == HALT
    assert (motd["drift"], motd["every"]) == ("report", 300.0)
    legacy1, legacy2 = base["hosts"]
    assert (legacy1["host"], legacy1["address"], legacy1["zone"]) == ("legacy1", "10.0.0.5", "dc1")
    assert legacy1["state"] == "WARNING" and legacy1["mode"] == "check"
    assert legacy1["summary"] == (
        "drift: would install agent 0.1.0; would change /etc/motd (repairing)"
    )
    assert legacy1["changes"] == ["install agent 0.1.0", "change /etc/motd"]
    assert legacy1["at"] == "2025-11-24T15:57:00Z"
    assert legacy1["pending_key"] == env.pending["legacy1"]
    assert legacy2["state"] == "WARNING" and legacy2["agent_version"] == "0.1.0"
    assert legacy2["summary"].startswith(f"agent installed; its key {env.pending['legacy2']}")
    assert legacy2["summary"].endswith("watchkeeper worker-key approve legacy2")
    legacy3, legacy4 = motd["hosts"]
    assert legacy3["state"] == "CRITICAL" and legacy3["ok"] is False
    assert (legacy3["error"], legacy3["error_kind"]) == (REFUSED, "unreachable")
    assert legacy3["summary"] == f"deploy check failed: {REFUSED}"
    assert legacy4["state"] == "PENDING" and legacy4["summary"] == legacy4["waiting"] == WAITING
    assert (legacy4["mode"], legacy4["at"], legacy4["ok"], legacy4["running"]) == (
        None, None, None, None
    )  # fmt: skip

    one = await env.http.get("/api/v1/deploy/deployments/motd", headers=as_manager())
    assert one.status_code == 200 and one.json() == motd
    keys = (await env.http.get("/api/v1/deploy/agent-keys", headers=as_manager())).json()
    assert [(k["host"], k["fingerprint"]) for k in keys["items"]] == [
        ("legacy1", env.pending["legacy1"]), ("legacy2", env.pending["legacy2"])
    ]  # fmt: skip
    assert keys["items"][0]["zone"] == "dc1" and keys["items"][0]["deployment"] == "base"
    assert keys["items"][0]["public_key"].startswith("ssh-ed25519 ")


async def test_unknown_deployments_hosts_and_bodies(env: DeployEnv) -> None:
    headers = as_manager()

    async def answer(method: str, path: str, body: object = None) -> tuple[int, object]:
        found = await env.http.request(method, path, json=body, headers=headers)
        return found.status_code, found.json()["detail"]

    nope = "no deployment 'nope' (deployments: base, motd)"
    assert await answer("GET", "/api/v1/deploy/deployments/nope") == (404, nope)
    assert await answer("POST", "/api/v1/deploy/deployments/nope/check") == (404, nope)
    assert await answer("POST", "/api/v1/deploy/deployments/base/apply", {"host": "legacy3"}) == (
        404, "deployment 'base' has no host 'legacy3' (hosts: legacy1, legacy2)"
    )  # fmt: skip
    for path, body, field in (
        ("/api/v1/deploy/deployments/base/check", {"hosts": ["legacy1"]}, "hosts"),
        ("/api/v1/deploy/deployments/base/check", {"host": ""}, "host"),
        ("/api/v1/deploy/deployments/base/apply", {"host": "h" * 256}, "host"),
    ):
        code, detail = await answer("POST", path, body)
        assert code == 422 and isinstance(detail, list), (path, body)
        assert field in detail[0]["loc"], (path, detail)
    code, _ = await answer("GET", f"/api/v1/deploy/deployments/{'d' * 256}")
    assert code == 422
    assert await answer("POST", "/api/v1/deploy/agent-keys/legacy4/approve") == (
        404, "no agent key of host 'legacy4' waits for approval (pending: legacy1, legacy2)"
    )  # fmt: skip
    assert await answer("POST", "/api/v1/deploy/agent-keys/legacy4/reject") == (
        404, "no agent key of host 'legacy4' waits for approval"
    )  # fmt: skip
    assert env.service.rollouts["base"].check_requested == frozenset()  # nothing was asked


async def test_an_admin_approves_and_the_key_is_the_hosts_agent(
    env: DeployEnv, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(NOTICE, logger="watchkeeper.deploy.views")
    await env.login(Role.ADMIN)
    approved = await env.http.post("/api/v1/deploy/agent-keys/legacy2/approve")
    assert approved.status_code == 200, approved.text
    assert approved.json() == {
        "host": "legacy2", "name": "agent-legacy2", "fingerprint": env.pending["legacy2"],
        "zones": ["dc1"], "agent_for": "legacy2", "revoked": False, "notes": [],
    }  # fmt: skip
    [line] = [r for r in caplog.records if getattr(r, "action", "") == "agent_key_approved"]
    assert line.levelname == "NOTICE" and getattr(line, "author", "") == "admin-user"
    assert "approved by admin-user" in line.getMessage()

    again = await env.http.post("/api/v1/deploy/agent-keys/legacy2/approve")
    assert again.status_code == 404 and "pending: legacy1" in again.json()["detail"]

    # The enrolment is the one `worker-key add --agent-for` makes, on the same store.
    args = build_parser().parse_args(["worker-key", "list", "--format", "json"])
    args.data_dir = env.data_dir
    assert await args.func(args) == 0
    [enrolled] = json.loads(capsys.readouterr().out)
    assert (enrolled["name"], enrolled["agent_for"], enrolled["zones"]) == (
        "agent-legacy2", "legacy2", ["dc1"]
    )  # fmt: skip
    assert enrolled["fingerprint"] == env.pending["legacy2"] and enrolled["revoked_at"] is None

    # The stage reads the pending keys again within seconds: the host's check follows.
    env.fed.clock.now += 10
    await env.service.step()
    legacy2 = env.view.deployment("base")["hosts"][1]
    assert legacy2["pending_key"] is None and legacy2["state"] == "OK"


async def test_an_admin_rejects_and_the_key_is_kept_revoked(env: DeployEnv) -> None:
    await env.login(Role.ADMIN)
    rejected = await env.http.post("/api/v1/deploy/agent-keys/legacy1/reject")
    assert rejected.status_code == 200, rejected.text
    body = rejected.json()
    assert (body["name"], body["fingerprint"], body["revoked"], body["agent_for"]) == (
        "rejected-legacy1", env.pending["legacy1"], True, "legacy1"
    )  # fmt: skip
    assert "does not offer it again" in body["notes"][0]
    assert [k["host"] for k in await env.view.pending_keys()] == ["legacy2"]
    async with env.db.session() as session:
        [kept] = [k for k in await store.list_worker_keys(session) if k.agent_for == "legacy1"]
    assert kept.revoked and kept.name == "rejected-legacy1"


async def test_openapi_lists_every_route_with_its_models(env: DeployEnv) -> None:
    schema = env.app.openapi()
    served = {
        (method.upper(), path)
        for path, item in schema["paths"].items()
        for method in item
        if path.startswith("/api/v1/deploy/")
    }
    assert served == TEMPLATES
    for method, path in TEMPLATES:
        responses = schema["paths"][path][method.lower()]["responses"]
        ok = "202" if path.endswith(("/check", "/apply")) else "200"
        assert "$ref" in json.dumps(responses[ok]["content"]), (method, path)
        if method == "POST" or "{" in path:
            assert "404" in responses, (method, path)
    for path in (
        "/api/v1/deploy/agent-keys/{host}/approve",
        "/api/v1/deploy/agent-keys/{host}/reject",
    ):
        assert "409" in schema["paths"][path]["post"]["responses"]
    check = schema["paths"]["/api/v1/deploy/deployments/{name}/check"]["post"]
    assert not check["requestBody"].get("required", False)  # the body is optional
    host_in = schema["components"]["schemas"]["HostIn"]
    assert host_in["additionalProperties"] is False


# --- the infrastructure page's deployments ------------------------------------------------


def section(html: str, element: str, ident: str) -> str:
    found = re.search(rf'<{element}[^>]*id="{ident}".*?</{element}>', html, re.S)
    assert found, ident
    return found.group(0)


async def test_the_page_shows_each_deployment_its_hosts_and_the_waiting_keys(
    env: DeployEnv,
) -> None:
    await env.login(Role.VIEWER)
    page = await env.http.get("/infrastructure")
    assert page.status_code == 200, page.text
    html = page.text
    assert "This manager runs no infrastructure stage." in html  # no infra port here
    assert 'id="deployments"' in html
    assert "drift repair, every 10m, max_concurrent 5, max_failures 1" in html
    assert section(html, "p", "halted-motd").count(HALT) == 1
    base = section(html, "table", "deploy-base")
    assert "would install agent 0.1.0; would change /etc/motd" in base
    assert "2 changes to make" in base and env.pending["legacy1"] in base
    motd = section(html, "table", "deploy-motd")
    assert REFUSED in motd and "unreachable" in motd and WAITING in motd
    assert 'data-host="legacy4" data-state="PENDING"' in motd
    keys = section(html, "table", "agent-keys")
    assert env.pending["legacy1"] in keys and env.pending["legacy2"] in keys
    assert "<button" not in html.split("<main>", 1)[1]  # a viewer gets no buttons
    assert "worker-key approve HOST" in html


async def test_operators_get_check_and_apply_admins_approve_and_reject(env: DeployEnv) -> None:
    await env.login(Role.OPERATOR)
    html = (await env.http.get("/infrastructure")).text
    for action in ("/deployments/base/check", "/deployments/motd/apply"):
        assert f'action="/infrastructure{action}"' in html, action
    assert "Resume and apply" in html and 'name="host" value="legacy3"' in html
    assert "/agent-keys/" not in html  # approving is an admin's
    forbidden = await env.http.post("/infrastructure/agent-keys/legacy2/approve", headers=HTMX)
    assert forbidden.status_code == 403
    asked = await env.http.post(
        "/infrastructure/deployments/base/check", data={"host": "legacy1"}, headers=HTMX
    )
    assert asked.status_code == 200 and "checking legacy1 now" in asked.text
    assert asked.headers["hx-trigger"] == "wk-changed"
    unknown = await env.http.post("/infrastructure/deployments/nope/apply", headers=HTMX)
    assert unknown.status_code == 404 and "no deployment" in unknown.text

    env.http.cookies.clear()
    await env.login(Role.ADMIN)
    html = (await env.http.get("/infrastructure")).text
    keys = section(html, "table", "agent-keys")
    for action in ("/agent-keys/legacy1/approve", "/agent-keys/legacy2/reject"):
        assert f'action="/infrastructure{action}"' in keys, action
    approved = await env.http.post("/infrastructure/agent-keys/legacy2/approve", headers=HTMX)
    assert approved.status_code == 200, approved.text
    assert f"enrolled agent-legacy2 ({env.pending['legacy2']}) for zone dc1" in approved.text
    rejected = await env.http.post("/infrastructure/agent-keys/legacy1/reject", headers=HTMX)
    assert rejected.status_code == 200 and "Rejected the agent key" in rejected.text
    assert await env.view.pending_keys() == []
    html = (await env.http.get("/infrastructure")).text
    assert 'id="agent-keys"' not in html
