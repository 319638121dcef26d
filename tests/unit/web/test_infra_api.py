"""``/api/v1/infra`` on a fake `Infra` port: roles, answers, the error mapping, OpenAPI;
and the hosts API's slot hosts (their machine's address, their machine)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fixtures.infra_web import MANAGER, InfraEnv, build
from watchkeeper.jobs.states import JobState
from watchkeeper.web.security import Role

#: Every route of the router, with a call an operator may make (method, path, body).
READS = [
    ("GET", "/api/v1/infra/platforms"),
    ("GET", "/api/v1/infra/resources"),
    ("GET", "/api/v1/infra/plan"),
    ("GET", "/api/v1/infra/operations"),
    ("GET", "/api/v1/infra/operations/7"),
]
ASKS = [
    ("POST", "/api/v1/infra/operations/7/confirm", None, 200),
    ("POST", "/api/v1/infra/operations/7/skip", None, 200),
    ("POST", "/api/v1/infra/apply", {"only": ["web"]}, 202),
    ("POST", "/api/v1/infra/unprotect", {"target": "web-1"}, 200),
    ("POST", "/api/v1/infra/adopt", {"target": "i-0look"}, 200),
    ("POST", "/api/v1/infra/platforms/eu-cloud/accept", None, 200),
    ("POST", "/api/v1/infra/hold/confirm", None, 404),  # nothing held: see below
]
TEMPLATES = {
    ("GET", "/api/v1/infra/platforms"),
    ("GET", "/api/v1/infra/resources"),
    ("GET", "/api/v1/infra/plan"),
    ("GET", "/api/v1/infra/operations"),
    ("GET", "/api/v1/infra/operations/{job_id}"),
    ("POST", "/api/v1/infra/operations/{job_id}/confirm"),
    ("POST", "/api/v1/infra/operations/{job_id}/skip"),
    ("POST", "/api/v1/infra/apply"),
    ("POST", "/api/v1/infra/unprotect"),
    ("POST", "/api/v1/infra/adopt"),
    ("POST", "/api/v1/infra/platforms/{name}/accept"),
    ("POST", "/api/v1/infra/hold/confirm"),
}


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[InfraEnv]:
    async for made in build(tmp_path):
        yield made


async def test_anonymous_callers_get_401(env: InfraEnv) -> None:
    for method, path in READS:
        assert (await env.http.request(method, path)).status_code == 401, path
    for method, path, body, _ in ASKS:
        assert (await env.http.request(method, path, json=body)).status_code == 401, path


async def test_a_viewer_reads_everything_and_may_ask_nothing(env: InfraEnv) -> None:
    await env.login(Role.VIEWER)
    for method, path in READS:
        answer = await env.http.request(method, path)
        assert answer.status_code == 200, (path, answer.text)
    for method, path, body, _ in ASKS:
        answer = await env.http.request(method, path, json=body)
        assert answer.status_code == 403, (path, answer.text)
        assert "operator" in answer.json()["detail"]
    assert [c for c in env.infra.calls if c[0] != "operations"] == []


async def test_an_operator_asks_and_is_recorded_as_the_author(env: InfraEnv) -> None:
    await env.login(Role.OPERATOR)
    for method, path, body, code in ASKS:
        answer = await env.http.request(method, path, json=body)
        assert answer.status_code == code, (path, answer.text)
    asked = [c for c in env.infra.calls if c[0] != "operations"]
    assert asked == [
        ("decide", 7, True, "operator-user"),
        ("decide", 7, False, "operator-user"),
        ("apply", ["web"], "operator-user"),
        ("unprotect", "web-1", "operator-user"),
        ("adopt", "i-0look", "operator-user"),
        ("accept", "eu-cloud", "operator-user"),
        ("confirm_hold", "operator-user"),
    ]


async def test_the_answers(env: InfraEnv) -> None:
    headers = {"Authorization": f"Bearer {MANAGER}"}
    platforms = (await env.http.get("/api/v1/infra/platforms", headers=headers)).json()
    assert platforms["total"] == 1 and platforms["items"][0]["state"] == "KNOWN"
    resources = (await env.http.get("/api/v1/infra/resources", headers=headers)).json()
    assert [s["slot"] for s in resources["items"][0]["slots"]] == ["web-0", "web-1", "web-2"]
    plan = (await env.http.get("/api/v1/infra/plan", headers=headers)).json()
    assert plan["hold"] is None and plan["plans"][0]["summary"].startswith("create 1")
    env.infra.held = {"reason": "it would remove 3 slots", "version": 4, "resources": {}}
    plan = (await env.http.get("/api/v1/infra/plan", headers=headers)).json()
    assert plan["hold"]["version"] == 4
    held = await env.http.post("/api/v1/infra/hold/confirm", headers=headers)
    assert held.status_code == 200 and held.json() == {"confirmed": True}
    assert ("confirm_hold", "manager-token") in env.infra.calls

    one = (await env.http.get("/api/v1/infra/operations/7", headers=headers)).json()
    assert one["id"] == 7 and one["audit"][0]["event"] == "planned"
    applied = await env.http.post("/api/v1/infra/apply", headers=headers)  # no body: all
    assert applied.status_code == 202 and applied.json() == {"platforms": ["eu-cloud"]}
    assert env.infra.calls[-1] == ("apply", [], "manager-token")
    confirmed = await env.http.post("/api/v1/infra/operations/7/confirm", headers=headers)
    assert confirmed.json()["state"] == "queued"
    assert confirmed.json()["decided_by"] == "manager-token"


async def test_the_operations_list_filters_pages_and_names_a_bad_state(env: InfraEnv) -> None:
    headers = {"Authorization": f"Bearer {MANAGER}"}
    page = await env.http.get(
        "/api/v1/infra/operations",
        params={"state": ["pending", "SUCCEEDED"], "resource": "web", "limit": 1, "offset": 1},
        headers=headers,
    )
    assert page.status_code == 200, page.text
    body = page.json()
    assert (body["total"], body["offset"], body["limit"]) == (2, 1, 1)
    assert [j["id"] for j in body["items"]] == [6]
    assert env.infra.calls[-1] == (
        "operations", [JobState.PENDING, JobState.SUCCEEDED], "web", 1, 1
    )  # fmt: skip
    commas = await env.http.get("/api/v1/infra/operations?state=pending,failed", headers=headers)
    assert env.infra.calls[-1][1] == [JobState.PENDING, JobState.FAILED]
    assert commas.json()["total"] == 1

    bad = await env.http.get("/api/v1/infra/operations?state=sideways", headers=headers)
    assert bad.status_code == 422 and bad.json()["detail"].startswith("state: ")
    for query in ("limit=0", "limit=1001", "offset=-1"):
        answer = await env.http.get(f"/api/v1/infra/operations?{query}", headers=headers)
        assert answer.status_code == 422, query


async def test_errors_are_404_409_and_422_naming_the_field(env: InfraEnv) -> None:
    headers = {"Authorization": f"Bearer {MANAGER}"}

    async def post(path: str, body: object = None) -> tuple[int, object]:
        answer = await env.http.post(f"/api/v1/infra{path}", json=body, headers=headers)
        return answer.status_code, answer.json()["detail"]

    assert await post("/operations/99/confirm") == (404, "no infrastructure job 99")
    assert await post("/operations/6/skip") == (
        409, "infrastructure job 6 is succeeded, not pending"
    )  # fmt: skip
    assert (await env.http.get("/api/v1/infra/operations/99", headers=headers)).status_code == 404
    assert (await post("/unprotect", {"target": "web-9"}))[0] == 404
    assert (await post("/adopt", {"target": "i-0nope"}))[0] == 404
    assert (await post("/platforms/mars/accept"))[0] == 404
    assert (await post("/apply", {"only": ["db"]}))[0] == 404
    assert (await post("/hold/confirm")) == (404, "no infrastructure is held")
    for path, body, field in (
        ("/unprotect", {"target": "web-1", "force": True}, "force"),
        ("/unprotect", {}, "target"),
        ("/unprotect", {"target": ""}, "target"),
        ("/adopt", {"target": "i" * 256}, "target"),
        ("/apply", {"only": "web"}, "only"),
        ("/apply", {"only": [""]}, "only"),
        ("/apply", {"every": True}, "every"),
    ):
        code, detail = await post(path, body)
        assert code == 422, (path, body)
        assert isinstance(detail, list) and field in detail[0]["loc"], (path, detail)
    for path in ("/operations/0/confirm", f"/operations/{2**63}/skip", "/operations/x/skip"):
        assert (await post(path))[0] == 422, path
    assert (await post(f"/platforms/{'p' * 256}/accept"))[0] == 422
    refused = {"web-9", "i-0nope"}  # a 422 never reaches the port
    assert all(c[1] in refused for c in env.infra.calls if c[0] in ("unprotect", "adopt"))


async def test_openapi_lists_every_route_with_its_error_answers(env: InfraEnv) -> None:
    schema = env.app.openapi()
    served = {
        (method.upper(), path)
        for path, item in schema["paths"].items()
        for method in item
        if path.startswith("/api/v1/infra/")
    }
    assert served == TEMPLATES
    for method, path in TEMPLATES:
        responses = schema["paths"][path][method.lower()]["responses"]
        ok = "202" if path.endswith("/apply") else "200"
        assert ok in responses, (method, path)
        assert "application/json" in responses[ok]["content"], (method, path)
        if method == "POST":
            assert {"404", "409"} <= responses.keys(), (method, path)
            assert "422" in responses, (method, path)
    apply = schema["paths"]["/api/v1/infra/apply"]["post"]
    assert not apply["requestBody"].get("required", False)  # the body is optional
    unprotect = schema["components"]["schemas"]["TargetIn"]
    assert unprotect["additionalProperties"] is False
    assert unprotect["properties"]["target"]["maxLength"] == 255


async def test_without_the_port_there_are_no_infra_routes(tmp_path: Path) -> None:
    async for env in build(tmp_path, with_infra=False):
        schema = env.app.openapi()
        assert not [p for p in schema["paths"] if p.startswith("/api/v1/infra")]
        headers = {"Authorization": f"Bearer {MANAGER}"}
        answer = await env.http.get("/api/v1/infra/platforms", headers=headers)
        assert answer.status_code == 404
        host = (await env.http.get("/api/v1/hosts/web-0", headers=headers)).json()
        assert host["address"] == "" and host["machine"] is None


async def test_slot_hosts_have_their_machines_address_and_machine(env: InfraEnv) -> None:
    headers = {"Authorization": f"Bearer {MANAGER}"}
    hosts = (await env.http.get("/api/v1/hosts", headers=headers)).json()["items"]
    addresses = {h["name"]: h["address"] for h in hosts}
    assert addresses == {
        "db1": "10.0.1.1", "infra:web": "", "web-0": "10.9.0.0", "web-1": "10.9.0.1", "web-2": ""
    }  # fmt: skip
    filled = (await env.http.get("/api/v1/hosts/web-1", headers=headers)).json()
    assert filled["address"] == "10.9.0.1"
    machine = filled["machine"]
    assert machine["platform"] == "eu-cloud" and machine["cloud_id"] == "i-0bbb"
    assert (machine["state"], machine["size"], machine["protected"]) == (
        "running",
        "t3.small",
        True,
    )
    empty = (await env.http.get("/api/v1/hosts/web-2", headers=headers)).json()
    assert empty["address"] == "" and empty["machine"] is None
    plain = (await env.http.get("/api/v1/hosts/db1", headers=headers)).json()
    assert plain["address"] == "10.0.1.1" and plain["machine"] is None
