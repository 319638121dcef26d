"""Authentication and authorisation end to end: a FastAPI app with the login and account
routers and a few dummy routes per role, driven through httpx's ASGI transport.

The clock is injected: session expiry, token expiry and lockouts move with it, not with time.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse

from watchkeeper import store
from watchkeeper.store import users as users_store
from watchkeeper.web.accounts_api import create_accounts_router
from watchkeeper.web.errors import install_error_handlers
from watchkeeper.web.login import create_login_router
from watchkeeper.web.security import (
    CookiePolicy,
    LimitPolicy,
    LoginThrottle,
    Passwords,
    Principal,
    Role,
    Security,
    SessionPolicy,
    accounts,
)
from watchkeeper.web.security.guard import SESSION_CACHE_SECONDS

T = 1_767_268_800.0  # 2026-01-01 12:00 UTC
MANAGER = "manager-secret-token-for-tests"
FAST = Passwords(time_cost=1, memory_cost=8, parallelism=1)
PASSWORD = "correct horse battery"


class Clock:
    def __init__(self) -> None:
        self.now = T

    def __call__(self) -> float:
        return self.now


@dataclass
class Env:
    client: httpx.AsyncClient
    security: Security
    clock: Clock
    db: store.Database

    async def user(self, name: str, role: Role, password: str = PASSWORD) -> None:
        await accounts.create_user(self.db, name=name, role=role, password=password, passwords=FAST)

    async def login(self, name: str, password: str = PASSWORD) -> str:
        """Log in through the JSON API; returns the session's CSRF token."""
        answer = await self.client.post(
            "/api/v1/session", json={"name": name, "password": password}
        )
        assert answer.status_code == 200, answer.text
        token: str = answer.json()["csrf_token"]
        return token

    async def form_login(self, name: str, password: str, next_target: str = "/") -> httpx.Response:
        page = await self.client.get("/login", params={"next": next_target})
        token = _hidden(page.text, "csrf_token")
        return await self.client.post(
            "/login",
            data={"name": name, "password": password, "csrf_token": token, "next": next_target},
        )


def _hidden(html: str, field: str) -> str:
    found = re.search(rf'name="{field}" value="([^"]*)"', html)
    assert found is not None, html
    return found.group(1)


def _set_cookie(response: httpx.Response, name: str) -> str:
    [header] = [h for h in response.headers.get_list("set-cookie") if h.startswith(f"{name}=")]
    return header


def build_app(security: Security) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)  # as create_app does: refusals become 404/409/422
    app.include_router(create_login_router(security))
    app.include_router(create_accounts_router(security))
    viewer = Depends(security.require(Role.VIEWER))
    operator = Depends(security.require(Role.OPERATOR))
    admin = Depends(security.require(Role.ADMIN))
    viewer_page = Depends(security.require(Role.VIEWER, page=True))
    operator_page = Depends(security.require(Role.OPERATOR, page=True))

    @app.get("/api/v1/things")
    async def things(principal: Principal = viewer) -> dict[str, Any]:
        return {"name": principal.name, "role": principal.role, "via": principal.via}

    @app.post("/api/v1/things/act")
    async def act(principal: Principal = operator) -> dict[str, Any]:
        return {"acted": principal.name}

    @app.delete("/api/v1/things/all", dependencies=[admin])
    async def wipe() -> dict[str, Any]:
        return {"wiped": True}

    @app.get("/page", response_class=HTMLResponse)
    async def page(
        principal: Principal = viewer_page,
    ) -> str:
        return f"<p>hello {principal.name}</p>"

    @app.post("/page/ack")
    async def ack(
        request: Request,
        principal: Principal = operator_page,
    ) -> dict[str, Any]:
        return {"acked": principal.name}

    return app


@pytest.fixture
async def env(db: store.Database) -> AsyncIterator[Env]:
    clock = Clock()
    security = Security(
        db,
        manager_token=MANAGER,
        passwords=FAST,
        sessions=SessionPolicy(idle=600, absolute=3600, touch_every=60),
        throttle=LoginThrottle(
            per_user=LimitPolicy(max_failures=5, window=60, lockout=60, max_lockout=3600)
        ),
        clock=clock,
    )
    transport = httpx.ASGITransport(app=build_app(security))
    async with httpx.AsyncClient(transport=transport, base_url="https://wk.test") as client:
        yield Env(client, security, clock, db)


def manager() -> dict[str, str]:
    return {"authorization": f"Bearer {MANAGER}"}


async def test_anonymous_gets_401_on_api_and_a_login_redirect_on_pages(env: Env) -> None:
    answer = await env.client.get("/api/v1/things")
    assert answer.status_code == 401
    assert "log in, or send an API token" in answer.json()["detail"]
    assert answer.headers["www-authenticate"] == "Bearer"
    page = await env.client.get("/page", params={"tab": "x"})
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=/page%3Ftab%3Dx"
    for path in ("/api/v1/users", "/api/v1/tokens"):
        assert (await env.client.get(path)).status_code == 401


async def test_the_manager_token_is_admin_and_a_wrong_bearer_is_refused(env: Env) -> None:
    answer = await env.client.get("/api/v1/things", headers=manager())
    assert answer.json() == {"name": "manager-token", "role": "admin", "via": "manager-token"}
    assert (await env.client.delete("/api/v1/things/all", headers=manager())).status_code == 200
    for header in ("Bearer nope", "Bearer wk_" + "a" * 43, "Basic Ym9iOnB3"):
        answer = await env.client.get("/api/v1/things", headers={"authorization": header})
        assert answer.status_code == 401, header


async def test_form_login_sets_a_fresh_httponly_samesite_cookie_and_redirects(env: Env) -> None:
    await env.user("ann", Role.VIEWER)
    page = await env.client.get("/login", params={"next": "/page"})
    assert page.status_code == 200 and 'type="password"' in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "<script" not in page.text
    planted = "attacker-chosen-session-id"
    env.client.cookies.set("wk_session", planted, domain="wk.test")
    token = _hidden(page.text, "csrf_token")
    answer = await env.client.post(
        "/login",
        data={"name": "ann", "password": PASSWORD, "csrf_token": token, "next": "/page"},
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/page"
    cookie = _set_cookie(answer, "wk_session")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" in cookie
    assert "Path=/" in cookie
    session_id = env.client.cookies.get("wk_session")
    assert session_id and session_id != planted
    assert (await env.client.get("/page")).text == "<p>hello ann</p>"


async def test_session_fixation_a_prior_session_dies_at_login(env: Env) -> None:
    await env.user("ann", Role.VIEWER)
    await env.login("ann")
    first = env.client.cookies.get("wk_session")
    await env.login("ann")
    second = env.client.cookies.get("wk_session")
    assert first and second and first != second
    env.client.cookies.set("wk_session", first, domain="wk.test")
    assert (await env.client.get("/api/v1/things")).status_code == 401


async def test_plain_http_gets_no_secure_flag_unless_told(db: store.Database) -> None:
    await accounts.create_user(db, name="ann", role=Role.VIEWER, password=PASSWORD, passwords=FAST)
    for secure, expected in ((None, False), (True, True)):
        security = Security(db, passwords=FAST, cookie=CookiePolicy(secure=secure))
        transport = httpx.ASGITransport(app=build_app(security))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            answer = await c.post("/api/v1/session", json={"name": "ann", "password": PASSWORD})
        assert ("Secure" in _set_cookie(answer, "wk_session")) is expected


async def test_login_only_redirects_within_the_site(env: Env) -> None:
    await env.user("ann", Role.VIEWER)
    answer = await env.form_login("ann", PASSWORD, next_target="https://evil.example/")
    assert answer.status_code == 303 and answer.headers["location"] == "/"


async def test_login_form_needs_its_own_csrf_token(env: Env) -> None:
    await env.user("ann", Role.VIEWER)
    answer = await env.client.post("/login", data={"name": "ann", "password": PASSWORD})
    assert answer.status_code == 403 and "expired" in answer.text
    assert "wk_session" not in env.client.cookies


async def test_wrong_password_and_unknown_user_say_the_same(env: Env) -> None:
    await env.user("ann", Role.VIEWER)
    wrong = await env.form_login("ann", "not the password")
    unknown = await env.form_login("nobody", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert "Wrong user name or password." in wrong.text and "Wrong user name" in unknown.text
    assert "not the password" not in wrong.text  # the password is never echoed


async def test_viewer_is_refused_operator_routes_and_operator_allowed(env: Env) -> None:
    await env.user("vera", Role.VIEWER)
    await env.user("otto", Role.OPERATOR)
    csrf = await env.login("vera")
    assert (await env.client.get("/api/v1/things")).json()["role"] == "viewer"
    refused = await env.client.post("/api/v1/things/act", headers={"x-csrf-token": csrf})
    assert refused.status_code == 403
    assert refused.json()["detail"] == "this needs the operator role; vera has the viewer role"
    csrf = await env.login("otto")
    allowed = await env.client.post("/api/v1/things/act", headers={"x-csrf-token": csrf})
    assert allowed.json() == {"acted": "otto"}
    refused = await env.client.delete("/api/v1/things/all", headers={"x-csrf-token": csrf})
    assert refused.status_code == 403 and "needs the admin role" in refused.json()["detail"]
    assert (await env.client.get("/api/v1/users")).status_code == 403


async def test_unsafe_requests_with_the_cookie_need_the_csrf_token(env: Env) -> None:
    await env.user("otto", Role.OPERATOR)
    csrf = await env.login("otto")
    missing = await env.client.post("/api/v1/things/act")
    assert missing.status_code == 403 and "CSRF" in missing.json()["detail"]
    wrong = await env.client.post("/api/v1/things/act", headers={"x-csrf-token": "x" + csrf})
    assert wrong.status_code == 403
    ok = await env.client.post("/api/v1/things/act", headers={"x-csrf-token": csrf})
    assert ok.status_code == 200
    form = await env.client.post("/page/ack", data={"csrf_token": csrf, "note": "on it"})
    assert form.json() == {"acked": "otto"}
    assert (await env.client.post("/page/ack", data={"note": "x"})).status_code == 403
    # GET needs none
    assert (await env.client.get("/api/v1/things")).status_code == 200


async def test_bearer_requests_need_no_csrf_token(env: Env) -> None:
    assert (await env.client.post("/api/v1/things/act", headers=manager())).status_code == 200


async def test_logout_needs_csrf_and_ends_the_session(env: Env) -> None:
    await env.user("ann", Role.VIEWER)
    csrf = await env.login("ann")
    assert (await env.client.post("/logout")).status_code == 403
    answer = await env.client.post("/logout", data={"csrf_token": csrf})
    assert answer.status_code == 303 and answer.headers["location"] == "/login"
    assert 'wk_session=""' in _set_cookie(answer, "wk_session")
    assert (await env.client.get("/page")).status_code == 303


async def test_json_session_api(env: Env) -> None:
    await env.user("ann", Role.OPERATOR)
    bad = await env.client.post("/api/v1/session", json={"name": "ann", "password": "nope"})
    assert bad.status_code == 401
    csrf = await env.login("ann")
    me = (await env.client.get("/api/v1/session")).json()
    assert me == {"name": "ann", "role": "operator", "via": "session", "csrf_token": csrf}
    assert (await env.client.delete("/api/v1/session")).status_code == 403  # no CSRF token
    answer = await env.client.delete("/api/v1/session", headers={"x-csrf-token": csrf})
    assert answer.status_code == 204
    assert (await env.client.get("/api/v1/session")).status_code == 401
    # a form-encoded or text body is not a JSON login (no cross-site form can post one)
    text = await env.client.post(
        "/api/v1/session",
        content=b'{"name": "ann", "password": "correct horse battery"}',
        headers={"content-type": "text/plain"},
    )
    assert text.status_code == 422


async def test_sessions_end_when_idle_or_old(env: Env) -> None:
    await env.user("ann", Role.VIEWER)
    await env.login("ann")
    for _ in range(6):  # busy: every 9 minutes, up to 54 minutes in
        env.clock.now += 540
        assert (await env.client.get("/api/v1/things")).status_code == 200
    env.clock.now += 540  # 63 minutes after login: past the absolute hour
    assert (await env.client.get("/api/v1/things")).status_code == 401

    await env.login("ann")
    env.clock.now += 600  # ten idle minutes
    answer = await env.client.get("/api/v1/things")
    assert answer.status_code == 401
    assert 'wk_session=""' in _set_cookie(answer, "wk_session")  # the browser drops it


async def test_pruning_removes_ended_sessions(env: Env) -> None:
    await env.user("ann", Role.VIEWER)
    await env.login("ann")
    assert await env.security.prune() == 0
    env.clock.now += 601
    assert await env.security.prune() == 1


async def test_rate_limiting_after_five_failures_says_when_to_retry(env: Env) -> None:
    await env.user("ann", Role.VIEWER)
    for n in range(4):
        answer = await env.form_login("ann", f"wrong {n}")
        assert answer.status_code == 401
    answer = await env.form_login("ann", "wrong 4")
    assert answer.status_code == 429 and answer.headers["retry-after"] == "60"
    assert "try again in 60 seconds" in answer.text
    # while locked even the right password is refused, unchecked
    env.clock.now += 20
    json_answer = await env.client.post(
        "/api/v1/session", json={"name": "ann", "password": PASSWORD}
    )
    assert json_answer.status_code == 429 and json_answer.headers["retry-after"] == "40"
    env.clock.now += 40
    assert (await env.form_login("ann", PASSWORD)).status_code == 303


async def test_admin_manages_users(env: Env) -> None:
    await env.user("root", Role.ADMIN)
    csrf = await env.login("root")
    h = {"x-csrf-token": csrf}
    made = await env.client.post("/api/v1/users", json={"name": "bob", "role": "viewer"}, headers=h)
    assert made.status_code == 201
    generated = made.json()["password"]
    assert made.json()["role"] == "viewer" and len(generated) >= 20
    chosen = {"name": "carl", "role": "operator", "password": "carl's long password"}
    made = await env.client.post("/api/v1/users", json=chosen, headers=h)
    assert made.status_code == 201 and made.json()["password"] is None
    dup = await env.client.post("/api/v1/users", json=chosen, headers=h)
    assert dup.status_code == 409
    short = {"name": "dora", "role": "viewer", "password": "short"}
    assert (await env.client.post("/api/v1/users", json=short, headers=h)).status_code == 422

    listed = await env.client.get("/api/v1/users")
    assert [u["name"] for u in listed.json()["items"]] == ["bob", "carl", "root"]
    assert "argon2" not in listed.text and 'password"' not in listed.text

    patched = await env.client.patch("/api/v1/users/bob", json={"role": "operator"}, headers=h)
    assert patched.json()["role"] == "operator"
    last = await env.client.patch("/api/v1/users/root", json={"role": "viewer"}, headers=h)
    assert last.status_code == 409 and "last enabled admin" in last.json()["detail"]
    assert (await env.client.delete("/api/v1/users/root", headers=h)).status_code == 409
    assert (await env.client.delete("/api/v1/users/ghost", headers=h)).status_code == 404
    assert (await env.client.delete("/api/v1/users/carl", headers=h)).status_code == 204

    # bob logs in with the generated password; disabling him ends his session
    bob = httpx.AsyncClient(transport=env.client._transport, base_url="https://wk.test")
    async with bob:
        answer = await bob.post("/api/v1/session", json={"name": "bob", "password": generated})
        assert answer.status_code == 200
        await env.client.patch("/api/v1/users/bob", json={"disabled": True}, headers=h)
        assert (await bob.get("/api/v1/things")).status_code == 401
        answer = await bob.post("/api/v1/session", json={"name": "bob", "password": generated})
        assert answer.status_code == 401


async def test_api_tokens_made_used_capped_revoked_and_expired(env: Env) -> None:
    await env.user("otto", Role.OPERATOR)
    await env.user("vera", Role.VIEWER)
    csrf = await env.login("otto")
    h = {"x-csrf-token": csrf}
    too_high = await env.client.post(
        "/api/v1/tokens", json={"name": "x", "role": "admin"}, headers=h
    )
    assert too_high.status_code == 403 and "at most the operator role" in too_high.text
    made = await env.client.post("/api/v1/tokens", json={"name": "ci", "expires": "1h"}, headers=h)
    assert made.status_code == 201
    token = made.json()["token"]
    assert token.startswith("wk_") and made.json()["role"] == "operator"
    listed = await env.client.get("/api/v1/tokens")
    assert token not in listed.text and 'token"' not in listed.text.replace('"prefix"', "")
    assert [t["name"] for t in listed.json()["items"]] == ["ci"]

    script = httpx.AsyncClient(transport=env.client._transport, base_url="https://wk.test")
    async with script:
        bearer = {"authorization": f"Bearer {token}"}
        assert (await script.post("/api/v1/things/act", headers=bearer)).json() == {"acted": "otto"}
        # a token cannot mint tokens
        minted = await script.post("/api/v1/tokens", json={"name": "more"}, headers=bearer)
        assert minted.status_code == 403
        # demoting the owner caps the token at once
        await users_store.update_user(env.db, "otto", role="viewer", now=env.security.now())
        assert (await script.post("/api/v1/things/act", headers=bearer)).status_code == 403
        assert (await script.get("/api/v1/things", headers=bearer)).json()["via"] == "token"
        # expiry
        env.clock.now += 3600
        assert (await script.get("/api/v1/things", headers=bearer)).status_code == 401
        env.clock.now -= 3600

        # vera cannot revoke otto's token; otto can
        token_id = made.json()["id"]
        await env.login("vera")
        vera_csrf = (await env.client.get("/api/v1/session")).json()["csrf_token"]
        answer = await env.client.delete(
            f"/api/v1/tokens/{token_id}", headers={"x-csrf-token": vera_csrf}
        )
        assert answer.status_code == 404
        others = await env.client.get("/api/v1/tokens", params={"owner": "otto"})
        assert others.status_code == 403
        csrf = await env.login("otto")
        answer = await env.client.delete(
            f"/api/v1/tokens/{token_id}", headers={"x-csrf-token": csrf}
        )
        assert answer.status_code == 200 and answer.json()["revoked_at"] is not None
        assert (await script.get("/api/v1/things", headers=bearer)).status_code == 401


async def test_the_manager_token_makes_tokens_for_a_named_owner(env: Env) -> None:
    await env.user("otto", Role.OPERATOR)
    no_owner = await env.client.post("/api/v1/tokens", json={"name": "x"}, headers=manager())
    assert no_owner.status_code == 422
    made = await env.client.post(
        "/api/v1/tokens", json={"name": "x", "owner": "otto"}, headers=manager()
    )
    assert made.status_code == 201 and made.json()["owner"] == "otto"
    assert (await env.client.get("/api/v1/tokens", headers=manager())).json()["items"][0][
        "owner"
    ] == "otto"
    ghost = await env.client.post(
        "/api/v1/tokens", json={"name": "x", "owner": "ghost"}, headers=manager()
    )
    assert ghost.status_code == 404


async def test_a_change_elsewhere_ends_a_session_within_seconds_one_here_at_once(
    env: Env,
) -> None:
    await env.user("ann", Role.OPERATOR)
    await env.user("bob", Role.OPERATOR)
    await env.login("ann")
    assert (await env.client.get("/api/v1/things")).status_code == 200
    # Another process (`watchkeeper user ...`) disables ann: this manager trusts the
    # session it read for at most SESSION_CACHE_SECONDS, then reads it again.
    await users_store.update_user(env.db, "ann", now=env.security.now(), disabled=True)
    assert (await env.client.get("/api/v1/things")).status_code == 200
    env.clock.now += SESSION_CACHE_SECONDS + 0.1
    assert (await env.client.get("/api/v1/things")).status_code == 401
    # Through this manager's API the change applies at the next request.
    env.client.cookies.clear()
    await env.login("bob")
    assert (await env.client.get("/api/v1/things")).status_code == 200
    demoted = await env.client.patch(
        "/api/v1/users/bob", json={"role": "viewer"}, headers=manager()
    )
    assert demoted.status_code == 200, demoted.text
    answer = await env.client.get("/api/v1/things")
    assert answer.status_code == 200 and answer.json()["role"] == "viewer"
