"""Alarms, remediation, workers and configuration pages for a viewer."""

from __future__ import annotations

import json

from tests.fixtures.engine import CRITICAL, OK, worker_info
from tests.unit.web.ui.conftest import MANAGER, Env, document
from watchkeeper.clock import utcnow
from watchkeeper.manager.intake import ConfigIntake
from watchkeeper.web.security import Role


async def test_alarms_show_open_then_resolved(env: Env) -> None:
    await env.report({"db1!ssh": (CRITICAL, "refused")})
    await env.login(Role.VIEWER)
    opened = await env.http.get("/alarms")
    assert opened.status_code == 200
    assert 'id="open-alarms"' in opened.text and 'data-key="db1!ssh"' in opened.text
    await env.report({"db1!ssh": (OK, "back")})
    resolved = await env.http.get("/alarms", headers={"HX-Request": "true"})
    assert "No open alarms." in resolved.text and 'id="resolved-alarms"' in resolved.text


async def test_workers_and_zones(env: Env) -> None:
    await env.login(Role.VIEWER)
    page = await env.http.get("/workers")
    assert page.status_code == 200
    assert "w1" in page.text and "site=a" in page.text and "1/4" in page.text
    assert 'id="zones"' in page.text and "dmz" in page.text


async def test_a_zone_of_one_worker_is_warned_of_no_failover_page_and_api(env: Env) -> None:
    await env.login(Role.VIEWER)
    page = (await env.http.get("/workers")).text
    warnings = page.split('id="zone-warnings"', 1)[1].split("</ul>", 1)[0]
    assert "zone core has 1 worker: no failover" in warnings and "dmz" not in warnings
    core = page.split('id="zone-core"', 1)[1].split("</tr>", 1)[0]
    assert "no failover" in core and ">1/4<" in core  # w1: one job of its four slots
    [core_out, dmz_out] = (await env.http.get("/api/v1/zones")).json()["items"]
    assert {k: core_out[k] for k in ("name", "workers_online", "capacity", "in_use")} == {
        "name": "core", "workers_online": 1, "capacity": 4, "in_use": 1,
    }  # fmt: skip
    assert core_out["warnings"] == ["zone core has 1 worker: no failover"]
    assert (dmz_out["workers_online"], dmz_out["warnings"]) == (0, [])  # its health says it

    # A second worker joins the zone: twice the slots, and failover, so no warning.
    env.server.connected.append(worker_info("w2", ("core",)))
    page = (await env.http.get("/workers", headers={"HX-Request": "true"})).text
    assert 'id="zone-warnings"' not in page and "no failover" not in page
    [core_out, _] = (await env.http.get("/api/v1/zones")).json()["items"]
    assert (core_out["workers_online"], core_out["capacity"], core_out["warnings"]) == (2, 8, [])


async def test_a_zone_without_worker_is_shown_as_the_problem_not_its_checks(env: Env) -> None:
    await env.report({"db1!ssh": (OK, "fine")})
    env.server.offline.add("dmz")
    for _ in range(70):  # past the 60 s grace, a turn a second
        env.clock.now += 1
        await env.runner._turn()
    assert env.runner.check_now("db1!ssh")  # due now, in a zone without a worker
    env.clock.now += 1
    await env.runner._turn()
    await env.stages.alarms.flush(force=True)
    await env.login(Role.VIEWER)
    workers = await env.http.get("/workers")
    row = workers.text.split('id="zone-dmz"', 1)[1].split("</tr>", 1)[0]
    assert "OFFLINE" in row and "row-st-critical" in workers.text
    overview = await env.http.get("/")
    banner = overview.text.split('id="offline-zones"', 1)[1].split("</section>", 1)[0]
    assert "#zone-dmz" in banner and "its 1 checks cannot run (1 missed a run so far)" in banner
    service = await env.http.get("/services/db1%21ssh")
    assert "NOT RUN" in service.text and "no worker for zone dmz" in service.text
    assert ">OK<" in service.text  # its last real state, not UNKNOWN
    alarms = await env.http.get("/alarms")
    assert 'href="/workers#zone-dmz"' in alarms.text and "OFFLINE" in alarms.text
    metrics = await env.http.get("/metrics", headers={"Authorization": f"Bearer {MANAGER}"})
    assert 'watchkeeper_zone_health{zone="dmz"} 2' in metrics.text
    assert 'watchkeeper_check_not_run{host="db1",service="ssh",zone="dmz"} 1' in metrics.text


async def test_remediation_page_without_jobs(env: Env) -> None:
    await env.login(Role.VIEWER)
    page = await env.http.get("/remediation")
    assert page.status_code == 200 and "No remediation has run." in page.text


async def test_config_versions_rejections_and_a_readable_diff(env: Env) -> None:
    intake = ConfigIntake(env.db, clock=utcnow)
    first = await intake.submit(json.dumps(document(2)).encode(), source="test")
    changed = document(2)
    changed["hosts"][1]["address"] = "10.0.1.2"
    changed["services"].append(dict(changed["services"][1], name="extra"))
    second = await intake.submit(json.dumps(changed).encode(), source="test")
    refused = await intake.submit(b'{"schema": "watchkeeper/v1", "hosts": 3}', source="test")
    assert first.accepted and second.accepted and not refused.accepted
    await env.login(Role.VIEWER)

    page = await env.http.get("/config")
    assert page.status_code == 200
    assert f'href="/config/versions/{second.version_id}"' in page.text
    assert f"/config/diff?from={first.version_id}&amp;to={second.version_id}" in page.text
    assert 'id="rejected"' in page.text and "/hosts" in page.text

    version = await env.http.get(f"/config/versions/{second.version_id}")
    assert version.status_code == 200 and "10.0.1.2" in version.text

    diff = await env.http.get(f"/config/diff?to={second.version_id}")  # from: the one before
    assert diff.status_code == 200
    assert "10.0.1.2" in diff.text and "10.0.1.1" in diff.text and "extra" in diff.text
    assert "/api/v1/config/diff?from=" in diff.text
    assert (await env.http.get("/config/diff?from=99&to=98")).status_code == 404
    assert (await env.http.get("/config/versions/99")).status_code == 404
