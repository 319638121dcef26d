"""The infrastructure page, its buttons, and a slot host's machine line, on a fake port."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fixtures.infra_web import InfraEnv, build
from watchkeeper.web.security import Role

HTMX = {"HX-Request": "true"}


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[InfraEnv]:
    async for made in build(tmp_path):
        yield made


def section(html: str, table: str) -> str:
    found = re.search(rf'<table[^>]*id="{table}".*?</table>', html, re.S)
    assert found, table
    return found.group(0)


async def test_anonymous_browsers_are_sent_to_the_login(env: InfraEnv) -> None:
    for path in ("/infrastructure", "/parts/hosts/web-0/machine"):
        answer = await env.http.get(path)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login")


async def test_a_viewer_sees_platforms_resources_plans_and_operations(env: InfraEnv) -> None:
    await env.login(Role.VIEWER)
    page = await env.http.get("/infrastructure")
    assert page.status_code == 200, page.text
    html = page.text
    assert 'href="/infrastructure" class="current"' in html  # the sidebar link
    platforms = section(html, "infra-platforms")
    for text in ("eu-cloud", "ec2", "KNOWN", "123 ms", "10%", "closed"):
        assert text in platforms, text
    assert "web <span" in html and "2/3 converged" in html
    assert "web-0 stopped out of band" in html and "infra:web" in html
    assert "t3.small, any image; update in-place, drift repair; confirm destroy" in html
    assert 'data-slot="web-2"' in html and "not provisioned" in html and "i-0bbb" in html
    assert "+web-2: count 3, observed 2" in html and "web-3 is protected" in html
    assert "i-0look" in html  # a lookalike
    pending = section(html, "infra-pending")
    assert "-web-3 (i-0dead): count 3" in pending
    operations = section(html, "infra-operations")
    assert "succeeded" in operations and ">ann<" in operations  # who confirmed it
    assert "<button" not in html.split("<main>", 1)[1]  # a viewer gets no buttons


async def test_an_operator_gets_the_buttons(env: InfraEnv) -> None:
    env.infra.state = "UNKNOWN"
    env.infra.held = {"reason": "it would remove 3 slots", "version": 4, "resources": {"web": 0}}
    await env.login(Role.OPERATOR)
    html = (await env.http.get("/infrastructure")).text
    for action in (
        "/infrastructure/apply",
        "/infrastructure/operations/7/confirm",
        "/infrastructure/operations/7/skip",
        "/infrastructure/platforms/eu-cloud/accept",
        "/infrastructure/hold/confirm",
        "/infrastructure/unprotect",
        "/infrastructure/adopt",
    ):
        assert f'action="{action}"' in html, action
    assert 'name="target" value="i-0bbb"' in html  # unprotect the protected slot only
    assert 'value="i-0aaa"' not in html
    assert "observed 0 of 2 known machines" in html and "it would remove 3 slots" in html


async def test_one_operation_with_its_audit_and_an_unknown_one(env: InfraEnv) -> None:
    await env.login(Role.VIEWER)
    page = await env.http.get("/infrastructure?op=7")
    assert page.status_code == 200 and "Change #7" in page.text and "planned" in page.text
    missing = await env.http.get("/infrastructure?op=99")
    assert missing.status_code == 404 and "no infrastructure operation 99" in missing.text


async def test_the_buttons_ask_the_port_as_the_operator(env: InfraEnv) -> None:
    token = await env.login(Role.OPERATOR)
    env.infra.held = {"reason": "r", "version": 4, "resources": {}}
    for path, data, flash in (
        ("/infrastructure/operations/7/confirm", {}, "Infrastructure change 7"),
        ("/infrastructure/operations/7/skip", {}, "change 7 skipped"),
        ("/infrastructure/apply", {"only": "web"}, "Observing and planning now: eu-cloud"),
        ("/infrastructure/unprotect", {"target": "web-1"}, "Protection of web-1 lifted"),
        ("/infrastructure/adopt", {"target": "i-0look"}, "Adopting i-0look"),
        ("/infrastructure/platforms/eu-cloud/accept", {}, "empty observation is accepted"),
        ("/infrastructure/hold/confirm", {}, "in force now"),
    ):
        answer = await env.http.post(path, data=data, headers=HTMX)
        assert answer.status_code == 200, (path, answer.text)
        assert flash in answer.text and answer.headers["hx-trigger"] == "wk-changed"
    assert [c for c in env.infra.calls if c[0] != "operations"] == [
        ("decide", 7, True, "operator-user"),
        ("decide", 7, False, "operator-user"),
        ("apply", ["web"], "operator-user"),
        ("unprotect", "web-1", "operator-user"),
        ("adopt", "i-0look", "operator-user"),
        ("accept", "eu-cloud", "operator-user"),
        ("confirm_hold", "operator-user"),
    ]
    # A plain form redirects back; a refusal is a flash with its status.
    del env.http.headers["X-CSRF-Token"]
    plain = await env.http.post(
        "/infrastructure/operations/7/skip", data={"csrf_token": token, "next": "/infrastructure"}
    )
    assert plain.status_code == 303 and plain.headers["location"] == "/infrastructure"
    for path, data, code in (
        ("/infrastructure/operations/6/confirm", {}, 409),
        ("/infrastructure/operations/99/skip", {}, 404),
        ("/infrastructure/unprotect", {}, 422),
        ("/infrastructure/hold/confirm", {}, 404),  # confirmed above: nothing held now
    ):
        answer = await env.http.post(path, data=data | {"csrf_token": token}, headers=HTMX)
        assert answer.status_code == code, (path, answer.text)
        assert 'class="flash error"' in answer.text


async def test_a_viewer_or_a_missing_csrf_token_is_refused(env: InfraEnv) -> None:
    await env.login(Role.VIEWER)
    for path in ("/infrastructure/apply", "/infrastructure/operations/7/confirm"):
        assert (await env.http.post(path, headers=HTMX)).status_code == 403, path
    del env.http.headers["X-CSRF-Token"]
    assert (await env.http.post("/infrastructure/apply")).status_code == 403
    assert [c for c in env.infra.calls if c[0] != "operations"] == []


async def test_a_slot_hosts_page_shows_its_machine(env: InfraEnv) -> None:
    await env.login(Role.VIEWER)
    page = await env.http.get("/hosts/web-1")
    assert 'hx-get="/parts/hosts/web-1/machine"' in page.text
    assert "/parts/hosts/db1/machine" not in (await env.http.get("/hosts/db1")).text
    line = await env.http.get("/parts/hosts/web-1/machine", headers=HTMX)
    assert line.status_code == 200
    text = re.sub(r"<[^>]+>", "", line.text)
    assert "web-1 on eu-cloud, i-0bbb (running, t3.small), address 10.9.0.1" in text
    assert "PROTECTED" in text
    for empty in ("web-2", "db1"):
        assert (await env.http.get(f"/parts/hosts/{empty}/machine")).status_code == 204


async def test_without_the_port_the_page_says_so(tmp_path: Path) -> None:
    async for env in build(tmp_path, with_infra=False):
        await env.login(Role.OPERATOR)
        page = await env.http.get("/infrastructure")
        assert page.status_code == 200 and "runs no infrastructure stage" in page.text
        assert (await env.http.get("/parts/hosts/web-0/machine")).status_code == 204
        refused = await env.http.post("/infrastructure/apply", headers=HTMX)
        assert refused.status_code == 404 and "no infrastructure stage" in refused.text
