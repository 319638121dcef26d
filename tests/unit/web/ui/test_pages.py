"""The pages of what runs now, for a logged-in viewer: content, filters, pages, headers."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fixtures.engine import CRITICAL, OK, UNKNOWN, WARNING
from tests.unit.web.ui.conftest import Env, build
from watchkeeper.telemetry import repository as telemetry_store
from watchkeeper.web.security import Role


async def problems(env: Env) -> None:
    await env.report({"web1": (OK, "SSH OK"), "web1!svc00000": (OK, "fine")})
    await env.report({"db1!ssh": (CRITICAL, "connection refused\nlong line one\nline two")})
    await env.report({"web1!svc00001": (WARNING, "slow: 900ms")})
    await env.report({"web1!svc00002": (UNKNOWN, "plugin <b>broke</b>")})


def rows_of(html: str, table: str) -> list[str]:
    """The data-key of each row of the table with id ``table``."""
    found = re.search(rf'<table[^>]*id="{table}".*?</table>', html, re.S)
    return re.findall(r'data-key="([^"]+)"', found.group(0)) if found else []


async def test_anonymous_browsers_are_sent_to_the_login(env: Env) -> None:
    for path in ("/", "/services", "/hosts/web1", "/services/db1!ssh", "/alarms", "/config"):
        answer = await env.http.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/login?next=")


async def test_the_overview_counts_states_and_lists_unhandled_problems_worst_first(
    env: Env,
) -> None:
    await problems(env)
    await env.login(Role.VIEWER)
    page = await env.http.get("/")
    assert page.status_code == 200
    html = page.text
    assert re.search(r'data-state="CRITICAL"><b>1</b>', html)
    assert re.search(r'data-state="WARNING"><b>1</b>', html)
    assert re.search(r'data-state="UNKNOWN"><b>1</b>', html)
    assert rows_of(html, "unhandled") == ["db1!ssh", "web1!svc00002", "web1!svc00001"]
    assert "viewer-user" in html and "viewer" in html  # who is logged in, and the role
    assert "<b>broke</b>" not in html and "&lt;b&gt;broke&lt;/b&gt;" in html  # escaped
    assert 'hx-trigger="every 5s' in html  # the live block polls
    assert "Ack</button>" not in html  # a viewer gets no action buttons


async def test_the_live_part_drops_an_acknowledged_problem_to_the_handled_list(env: Env) -> None:
    await problems(env)
    await env.login(Role.VIEWER)
    await env.stages.alarms.acknowledge("db1!ssh", "ann", "on it")
    part = await env.http.get("/parts/overview", headers={"HX-Request": "true"})
    assert part.status_code == 200 and "<html" not in part.text
    assert "db1!ssh" not in rows_of(part.text, "unhandled")
    assert rows_of(part.text, "handled") == ["db1!ssh"]


async def test_every_page_sends_a_strict_csp(env: Env) -> None:
    await env.login(Role.VIEWER)
    for path in ("/", "/services", "/hosts", "/parts/overview", "/workers", "/config"):
        answer = await env.http.get(path)
        assert answer.status_code == 200, path
        csp = answer.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "unsafe-inline" not in csp
        assert answer.headers["x-frame-options"] == "DENY"
        assert "<script>" not in answer.text and " style=" not in answer.text


async def test_services_filter_by_state_host_zone_and_search(env: Env) -> None:
    await problems(env)
    await env.login(Role.VIEWER)

    async def keys(**params: object) -> list[str]:
        answer = await env.http.get("/services", params=params)  # type: ignore[arg-type]
        assert answer.status_code == 200, answer.text
        return rows_of(answer.text, "service-table")

    assert await keys(state="CRITICAL") == ["db1!ssh"]
    assert await keys(state=["WARNING", "UNKNOWN"]) == ["web1!svc00001", "web1!svc00002"]
    assert await keys(state="warning,unknown", sort="severity") == [
        "web1!svc00002",
        "web1!svc00001",
    ]
    assert await keys(zone="dmz") == ["db1!ssh"]
    assert await keys(host="db1") == ["db1!ssh"]
    assert await keys(q="SLOW") == ["web1!svc00001"]
    assert await keys(unhandled="true") == ["db1!ssh", "web1!svc00001", "web1!svc00002"]
    bad = await env.http.get("/services", params={"state": "PURPLE"})
    assert bad.status_code == 422


async def test_the_service_list_fragment_is_the_table_alone(env: Env) -> None:
    await env.login(Role.VIEWER)
    part = await env.http.get("/services", headers={"HX-Request": "true"})
    assert part.status_code == 200
    assert part.text.lstrip().startswith('<nav class="pager"') and "<html" not in part.text


@pytest.fixture
async def big(tmp_path: Path) -> AsyncIterator[Env]:
    async for made in build(tmp_path, services=250):
        yield made


async def test_lists_render_one_page_of_a_hundred(big: Env) -> None:
    await big.login(Role.VIEWER)
    first = await big.http.get("/services")
    third = await big.http.get("/services", params={"page": 3})
    keys_first, keys_third = (
        rows_of(first.text, "service-table"),
        rows_of(third.text, "service-table"),
    )
    assert len(keys_first) == 100 and keys_first[0] == "db1!ssh"
    assert "253 in all · page 1 of 3" in first.text and 'rel="next"' in first.text
    assert len(keys_third) == 53 and keys_third[-1] == "web1!svc00249"
    assert 'rel="next"' not in third.text and 'rel="prev"' in third.text
    assert not set(keys_first) & set(keys_third)


async def test_the_service_page_shows_state_output_history_and_graphs(env: Env) -> None:
    await problems(env)
    await telemetry_store.write_points(
        env.db, [(("db1!ssh", "time", "s"), int(env.clock.now * 1000), 0.5)]
    )
    await env.login(Role.VIEWER)
    page = await env.http.get("/services/db1!ssh")
    assert page.status_code == 200
    html = page.text
    assert 'data-state="CRITICAL"' in html
    assert "connection refused" in html and "long line one" in html  # long output apart
    assert re.search(r'<table class="grid" id="history">.*CRITICAL', html, re.S)
    assert "/static/vendor/uplot/uPlot.iife.min.js" in html
    # one graph per recorded metric, drawn by app.js from the metrics API
    assert 'data-src="/api/v1/checks/db1!ssh/metrics/time"' in html and 'data-uom="s"' in html
    for name in ("6h", "1d", "7d", "30d", "1y"):
        assert f'data-range="{name}"' in html
    state = await env.http.get("/parts/services/db1!ssh/state")
    assert state.status_code == 200 and "connection refused" in state.text
    missing = await env.http.get("/services/nope!nothing")
    assert missing.status_code == 404


async def test_the_host_page_lists_its_checks_and_labels(env: Env) -> None:
    await problems(env)
    await env.login(Role.VIEWER)
    page = await env.http.get("/hosts/web1")
    assert page.status_code == 200
    assert "role=web" in page.text and "10.0.0.1" in page.text
    assert "web1!svc00001" in page.text and "web1!svc00002" in page.text
    hosts = await env.http.get("/hosts", params={"zone": "dmz"})
    assert "db1" in hosts.text and "/hosts/web1" not in hosts.text
    assert (await env.http.get("/hosts/nohost")).status_code == 404


def history_states(html: str) -> list[str]:
    table = html.split('id="history"', 1)[1].split("</table>", 1)[0]
    return re.findall(
        r'<td><span class="badge[^"]*"[^>]*>(\w+)</span></td>\s*<td>[A-Z]+</td>', table
    )


async def test_a_hosts_history_is_up_and_down_its_host_checks_is_ok_and_critical(
    env: Env,
) -> None:
    await env.report({"web1": (OK, "pong")})
    await env.report({"web1": (CRITICAL, "no answer")})
    await env.login(Role.VIEWER)
    host = await env.http.get("/hosts/web1")
    assert history_states(host.text) == ["DOWN"]  # from UP, which every host starts in
    check = await env.http.get("/services/web1")
    assert history_states(check.text) == ["CRITICAL", "OK"]
