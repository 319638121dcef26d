"""Logging in and out: the HTML form for browsers, and ``/api/v1/session`` for scripts.

``POST /login`` is rate limited (`LoginThrottle`), always starts a new session (a session id
planted before login is deleted), and only redirects to a path on this site. The login form
has no session yet, so it carries a double-submit CSRF token (`csrf.LOGIN_COOKIE`), which
stops another site from logging a browser into an account of the attacker's choosing.
``POST /logout`` needs the session's CSRF token like every other form.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import jinja2
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field

from watchkeeper.web.security import csrf
from watchkeeper.web.security.guard import (
    LoginAccepted,
    LoginRejected,
    LoginThrottled,
    Security,
    client_address,
)
from watchkeeper.web.security.passwords import MAX_PASSWORD_LENGTH
from watchkeeper.web.security.principal import Principal
from watchkeeper.web.security.redirects import DEFAULT_TARGET, safe_next
from watchkeeper.web.security.roles import Role

TEMPLATES = Path(__file__).parent / "templates"
#: A login form body larger than this is refused unread.
MAX_LOGIN_BODY = 16 * 1024
#: How long a login form stays usable (its double-submit cookie's lifetime).
LOGIN_FORM_SECONDS = 3600
#: The login page loads nothing from anywhere and may not be framed.
PAGE_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}
WRONG_CREDENTIALS = "Wrong user name or password."
FORM_EXPIRED = "The login form expired or was not sent from this site: please try again."

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=256)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)


class SessionOut(BaseModel):
    """Who the caller is; ``csrf_token`` is what unsafe requests with the cookie must send."""

    name: str
    role: Role
    via: str
    csrf_token: str | None = None


def create_login_router(security: Security) -> APIRouter:
    """``GET/POST /login``, ``POST /logout`` and ``GET/POST/DELETE /api/v1/session``."""
    router = APIRouter()
    viewer_page = Depends(security.require(Role.VIEWER, page=True))
    viewer = Depends(security.require(Role.VIEWER))

    @router.get("/login", response_class=HTMLResponse, include_in_schema=False)
    async def login_form(
        request: Request, next_target: Annotated[str, Query(alias="next")] = DEFAULT_TARGET
    ) -> Response:
        return render_login(request, security, next_target=next_target)

    @router.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = csrf.parse_form(await _small_form_body(request))

        def field(key: str) -> str:
            values = form.get(key)
            return values[0] if values else ""

        name, password, next_target = field("name").strip(), field("password"), field("next")
        if not csrf.matches(request.cookies.get(csrf.LOGIN_COOKIE), field(csrf.FORM_FIELD)):
            return render_login(
                request, security, next_target=next_target, name=name, error=FORM_EXPIRED, code=403
            )
        outcome = await security.check_password(name, password, client_address(request))
        if isinstance(outcome, LoginThrottled):
            page = render_login(
                request,
                security,
                next_target=next_target,
                name=name,
                error=f"Too many failed logins: try again in {outcome.retry_after} seconds.",
                code=status.HTTP_429_TOO_MANY_REQUESTS,
            )
            page.headers["retry-after"] = str(outcome.retry_after)
            return page
        if isinstance(outcome, LoginRejected):
            return render_login(
                request,
                security,
                next_target=next_target,
                name=name,
                error=WRONG_CREDENTIALS,
                code=status.HTTP_401_UNAUTHORIZED,
            )
        response = RedirectResponse(safe_next(next_target), status.HTTP_303_SEE_OTHER)
        await security.open_session(request, response, outcome.user)
        response.delete_cookie(csrf.LOGIN_COOKIE, path="/login")
        return response

    @router.post("/logout", include_in_schema=False, dependencies=[viewer_page])
    async def logout(request: Request) -> Response:
        response = RedirectResponse("/login", status.HTTP_303_SEE_OTHER)
        await security.close_session(request, response)
        return response

    @router.get("/api/v1/session", response_model=SessionOut, tags=["session"])
    async def whoami(principal: Principal = viewer) -> SessionOut:
        """The caller, and the CSRF token its unsafe cookie-authenticated requests must send."""
        return _session_out(principal)

    @router.post(
        "/api/v1/session",
        response_model=SessionOut,
        tags=["session"],
        responses={401: {}, 429: {}},
    )
    async def log_in(body: LoginIn, request: Request, response: Response) -> SessionOut:
        """Log in with a name and password: sets the session cookie (for scripts and tests)."""
        outcome = await security.check_password(body.name, body.password, client_address(request))
        if isinstance(outcome, LoginThrottled):
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                f"too many failed logins: try again in {outcome.retry_after} seconds",
                headers={"retry-after": str(outcome.retry_after)},
            )
        if not isinstance(outcome, LoginAccepted):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong user name or password")
        return _session_out(await security.open_session(request, response, outcome.user))

    @router.delete("/api/v1/session", status_code=status.HTTP_204_NO_CONTENT, tags=["session"])
    async def log_out(request: Request, response: Response, principal: Principal = viewer) -> None:
        """End the caller's login session (a token caller has none: nothing happens)."""
        if principal.via == "session":
            await security.close_session(request, response)

    return router


def render_login(
    request: Request,
    security: Security,
    *,
    next_target: str,
    name: str = "",
    error: str | None = None,
    code: int = status.HTTP_200_OK,
) -> HTMLResponse:
    """The login page, with a fresh double-submit token in the form and in its cookie."""
    token = csrf.new_token()
    context: dict[str, Any] = {
        "csrf_token": token,
        "next": safe_next(next_target),
        "name": name[:256],
        "error": error,
    }
    page = HTMLResponse(
        _templates.get_template("login.html").render(context),
        status_code=code,
        headers=PAGE_HEADERS,
    )
    page.set_cookie(
        csrf.LOGIN_COOKIE,
        token,
        max_age=LOGIN_FORM_SECONDS,
        path="/login",
        secure=security.cookie.is_secure(request.url.scheme),
        httponly=True,
        samesite="strict",
    )
    return page


async def _small_form_body(request: Request) -> bytes:
    """The urlencoded body of a login form; 413 if too large, 415 if not a urlencoded form."""
    kind = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if kind != csrf.FORM_CONTENT_TYPE:
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"send the login form as {csrf.FORM_CONTENT_TYPE}",
        )
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_LOGIN_BODY:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "login form too large")
    return body


def _session_out(principal: Principal) -> SessionOut:
    return SessionOut(
        name=principal.name,
        role=principal.role,
        via=principal.via,
        csrf_token=principal.csrf_token,
    )
