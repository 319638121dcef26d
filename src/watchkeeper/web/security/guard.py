"""`Security`: who is asking, may they, and the login session's life; FastAPI at the edge.

A request is authenticated by the first of:

1. ``Authorization: Bearer <manager token>`` (``<data-dir>/api-token``): admin, named
   ``manager-token``.
2. ``Authorization: Bearer wk_...``: a user's API token, if not revoked or expired and its
   owner is enabled; its role is the lower of the token's and the owner's role now.
3. The ``wk_session`` cookie of a live session; unsafe methods must also carry the
   session's CSRF token (see `csrf`).

A Bearer header that matches nothing is refused outright (401), never tried as a cookie.
``require(role)`` turns that into a route dependency: anonymous callers get 401 (API) or a
redirect to ``/login?next=...`` (pages, ``page=True``), callers without the role 403.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Response, status
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from watchkeeper.errors import StoreError
from watchkeeper.latch import FailureLatch
from watchkeeper.store import users as users_store
from watchkeeper.store.db import Database
from watchkeeper.web.security import csrf, tokens
from watchkeeper.web.security.accounts import hash_password
from watchkeeper.web.security.passwords import MAX_PASSWORD_LENGTH, Passwords
from watchkeeper.web.security.principal import MANAGER_TOKEN_NAME, Principal
from watchkeeper.web.security.ratelimit import LoginThrottle
from watchkeeper.web.security.redirects import login_url
from watchkeeper.web.security.roles import Role, lowest
from watchkeeper.web.security.sessions import (
    CookiePolicy,
    SessionPolicy,
    SessionTimes,
    expired,
    needs_touch,
    new_session_id,
)

logger = logging.getLogger(__name__)

#: ``last used`` of an API token is written at most this often.
TOKEN_TOUCH_EVERY = 60.0
#: A form body larger than this is not read for its CSRF field (send the header instead).
MAX_CSRF_FORM_BYTES = 1024 * 1024
#: Where `Security` keeps the request's principal once found (``request.state``).
STATE_KEY = "principal"
#: Seconds a session read from the store is trusted before it is read again. A page polls
#: a few fragments every few seconds; without this each request costs a store read. It bounds
#: how long a change made by another process (`watchkeeper user passwd`, `remove`) takes
#: to end a session; changes through this manager's API and logouts apply at once.
SESSION_CACHE_SECONDS = 2.0
#: Sessions remembered at most (the cache is emptied when full).
SESSION_CACHE_SIZE = 10_000

#: Declared for the OpenAPI document; both are optional here, `Security` decides.
_BEARER = HTTPBearer(auto_error=False, description="the manager token or a user's wk_ token")
_COOKIE = APIKeyCookie(name="wk_session", auto_error=False, description="a login session")

ANONYMOUS_DETAIL = "log in, or send an API token: Authorization: Bearer <token>"
BAD_TOKEN_DETAIL = "the API token is unknown, revoked or expired"
CSRF_DETAIL = (
    "the CSRF token is missing or wrong: send the session's token in the X-CSRF-Token "
    "header or the csrf_token form field"
)


@dataclass(frozen=True, slots=True)
class LoginAccepted:
    user: users_store.User


@dataclass(frozen=True, slots=True)
class LoginRejected:
    """Wrong name or password, or a disabled user: the caller cannot tell which."""


@dataclass(frozen=True, slots=True)
class LoginThrottled:
    retry_after: int


LoginOutcome = LoginAccepted | LoginRejected | LoginThrottled


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


class Security:
    """Authentication and authorisation for the manager's web interface and API.

    One per app; every argument has a production default except the database.
    """

    def __init__(
        self,
        db: Database,
        *,
        manager_token: str | None = None,
        passwords: Passwords | None = None,
        sessions: SessionPolicy | None = None,
        cookie: CookiePolicy | None = None,
        throttle: LoginThrottle | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self._manager_token = manager_token.encode() if manager_token else None
        self.passwords = passwords or Passwords()
        self.sessions = sessions or SessionPolicy()
        self.cookie = cookie or CookiePolicy()
        self.throttle = throttle or LoginThrottle()
        self.clock = clock
        self._requires: dict[tuple[Role, bool], Callable[..., Awaitable[Principal]]] = {}
        #: Sessions read from the store lately: id hash -> (when read, record).
        self._seen: dict[str, tuple[float, users_store.SessionRecord]] = {}

    def forget_sessions(self) -> None:
        """Read every session from the store again: a user changed through this manager."""
        self._seen.clear()

    def now(self) -> datetime:
        """The injected clock as an aware UTC datetime, for the store."""
        return _at(self.clock())

    # --- route dependencies -----------------------------------------------------------------

    def require(self, role: Role, *, page: bool = False) -> Callable[..., Awaitable[Principal]]:
        """A dependency admitting callers with ``role`` or more; it returns their `Principal`.

        ``page=True`` sends anonymous browsers to ``/login?next=<this page>`` (303) instead of
        answering 401. The same function comes back for the same arguments, so FastAPI runs
        it once per request however many routers and routes name it.
        """
        found = self._requires.get((role, page))
        if found is not None:
            return found

        async def require(
            request: Request,
            _bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
            _cookie: Annotated[str | None, Depends(_COOKIE)],
        ) -> Principal:
            principal = await self.authenticate(request)
            if principal is None:
                raise self._anonymous(request, page=page)
            if not principal.allows(role):
                raise HTTPException(
                    status.HTTP_403_FORBIDDEN,
                    f"this needs the {role} role; {principal.name} has the {principal.role} role",
                )
            if principal.via == "session" and csrf.is_unsafe(request.method):
                await self._check_csrf(request, principal)
            return principal

        require.__name__ = f"require_{role}{'_page' if page else ''}"
        self._requires[(role, page)] = require
        return require

    async def optional(self, request: Request) -> Principal | None:
        """A dependency giving the caller if known, else None; it checks no CSRF token."""
        return await self.authenticate(request)

    async def authenticate(self, request: Request) -> Principal | None:
        """The caller, or None if anonymous; 401 for a Bearer token that matches nothing."""
        cached = getattr(request.state, STATE_KEY, None)
        if isinstance(cached, Principal):
            return cached
        header = request.headers.get("authorization")
        principal: Principal | None
        if header is not None:
            scheme, _, given = header.partition(" ")
            principal = None
            if scheme.lower() == "bearer" and given.strip():
                principal = await self._bearer(given.strip())
            if principal is None:
                raise HTTPException(
                    status.HTTP_401_UNAUTHORIZED,
                    BAD_TOKEN_DETAIL if scheme.lower() == "bearer" else ANONYMOUS_DETAIL,
                    headers={"WWW-Authenticate": "Bearer"},
                )
        else:
            principal = await self._session(request)
        if principal is not None:
            setattr(request.state, STATE_KEY, principal)
        return principal

    # --- login and sessions -----------------------------------------------------------------

    async def check_password(self, name: str, password: str, address: str) -> LoginOutcome:
        """Whether ``name`` may log in with ``password`` now, counting the attempt.

        Unknown names cost the same hashing time as known ones, and say the same.
        """
        refusal = self.throttle.begin(name, address, self.clock())
        if refusal is not None:
            return LoginThrottled(refusal.retry_after)
        credentials: users_store.Credentials | None = None
        ok = False
        try:
            if len(password) <= MAX_PASSWORD_LENGTH and len(name) <= 256:
                async with self.db.session() as session:
                    credentials = await users_store.get_credentials(session, name)
            if credentials is None:
                await asyncio.to_thread(self.passwords.burn, password[:MAX_PASSWORD_LENGTH])
            else:
                ok = not credentials.user.disabled and await asyncio.to_thread(
                    self.passwords.verify, credentials.password_hash, password
                )
        finally:
            refusal = self.throttle.finish(name, address, self.clock(), ok=ok)
        if not ok or credentials is None:
            logger.info(
                "login refused for %r from %s",
                name[:64],
                address,
                extra={"action": "login_refused", "user": name[:64], "address": address},
            )
            return LoginRejected() if refusal is None else LoginThrottled(refusal.retry_after)
        rehashed = None
        if self.passwords.needs_rehash(credentials.password_hash):
            rehashed = await hash_password(self.passwords, password)
        await users_store.record_login(self.db, name, now=_at(self.clock()), password_hash=rehashed)
        logger.info(
            "%s logged in from %s",
            name,
            address,
            extra={"action": "login", "user": name, "address": address},
        )
        return LoginAccepted(credentials.user)

    async def open_session(
        self, request: Request, response: Response, user: users_store.User
    ) -> Principal:
        """Start a session for ``user`` with a new id, and set its cookie on ``response``.

        Any session the browser already had is deleted: an id planted before login (session
        fixation) is worth nothing after it.
        """
        now = self.clock()
        session_id = new_session_id()
        csrf_token = csrf.new_token()
        old = request.cookies.get(self.cookie.name)
        await users_store.create_session(
            self.db,
            id_hash=tokens.digest(session_id),
            user_name=user.name,
            csrf_token=csrf_token,
            now=_at(now),
            expires_at=_at(now + self.sessions.absolute),
            address=client_address(request),
            replaces=tokens.digest(old) if old else None,
        )
        self.set_cookie(request, response, session_id)
        principal = Principal(user.name, Role(user.role), "session", csrf_token=csrf_token)
        setattr(request.state, STATE_KEY, principal)
        return principal

    async def close_session(self, request: Request, response: Response) -> None:
        """Delete the browser's session (if any) and its cookie."""
        sid = request.cookies.get(self.cookie.name)
        if sid:
            self._seen.pop(tokens.digest(sid), None)
            await users_store.delete_session(self.db, tokens.digest(sid))
        self.clear_cookie(request, response)

    def set_cookie(self, request: Request, response: Response, session_id: str) -> None:
        response.set_cookie(
            self.cookie.name,
            session_id,
            max_age=int(self.sessions.absolute),
            path="/",
            secure=self.cookie.is_secure(request.url.scheme),
            httponly=True,
            samesite=self.cookie.same_site,
        )

    def clear_cookie(self, request: Request, response: Response) -> None:
        response.delete_cookie(
            self.cookie.name,
            path="/",
            secure=self.cookie.is_secure(request.url.scheme),
            httponly=True,
            samesite=self.cookie.same_site,
        )

    # --- upkeep -----------------------------------------------------------------------------

    async def prune(self) -> int:
        """Delete ended sessions and forget quiet rate-limit keys; how many sessions went."""
        now = self.clock()
        self.throttle.prune(now)
        return await users_store.prune_sessions(
            self.db, now=_at(now), idle_since=_at(now - self.sessions.idle)
        )

    async def run(self, interval: float = 600.0) -> None:
        """Prune every ``interval`` seconds until cancelled; a failing database is logged once."""
        latch = FailureLatch(
            logger, "cannot prune sessions: %s", "session pruning recovered", action="prune"
        )
        while True:
            try:
                await self.prune()
            except StoreError as exc:
                latch.failed(exc.message)
            else:
                latch.succeeded()
            await asyncio.sleep(interval)

    # --- inside -----------------------------------------------------------------------------

    async def _bearer(self, given: str) -> Principal | None:
        if self._manager_token is not None and hmac.compare_digest(
            given.encode(), self._manager_token
        ):
            return Principal(MANAGER_TOKEN_NAME, Role.ADMIN, "manager-token")
        if not tokens.looks_like_user_token(given):
            return None
        async with self.db.session() as session:
            match = await users_store.find_token(session, tokens.digest(given))
        now = self.clock()
        if match is None or match.owner_disabled or not match.token.usable(_at(now)):
            return None
        token = match.token
        last = token.last_used_at.timestamp() if token.last_used_at else None
        if last is None or now - last >= TOKEN_TOUCH_EVERY:
            await users_store.touch_token(self.db, token.id, now=_at(now))
        role = lowest(Role(token.role), Role(match.owner_role))
        return Principal(token.owner, role, "token", token_id=token.id)

    async def _session(self, request: Request) -> Principal | None:
        sid = request.cookies.get(self.cookie.name)
        if not sid or len(sid) > 128:
            return None
        id_hash = tokens.digest(sid)
        now = self.clock()
        seen = self._seen.get(id_hash)
        if seen is not None and 0 <= now - seen[0] < SESSION_CACHE_SECONDS:
            record: users_store.SessionRecord | None = seen[1]
        else:
            async with self.db.session() as session:
                record = await users_store.get_session(session, id_hash)
            if len(self._seen) >= SESSION_CACHE_SIZE:
                self._seen.clear()
            if record is None:
                self._seen.pop(id_hash, None)
            else:
                self._seen[id_hash] = (now, record)
        if record is None or record.disabled:
            return None
        times = SessionTimes(
            created=record.created_at.timestamp(),
            last_seen=record.last_seen_at.timestamp(),
            expires=record.expires_at.timestamp(),
        )
        if expired(times, self.sessions, now) is not None:
            self._seen.pop(id_hash, None)
            await users_store.delete_session(self.db, id_hash)
            return None
        if needs_touch(times, self.sessions, now):
            await users_store.touch_session(self.db, id_hash, now=_at(now))
            if id_hash in self._seen:
                touched = dataclasses.replace(record, last_seen_at=_at(now))
                self._seen[id_hash] = (self._seen[id_hash][0], touched)
        return Principal(
            record.user_name, Role(record.role), "session", csrf_token=record.csrf_token
        )

    async def _check_csrf(self, request: Request, principal: Principal) -> None:
        given = request.headers.get(csrf.HEADER)
        if given is None:
            given = await _form_token(request)
        if not csrf.matches(principal.csrf_token, given):
            raise HTTPException(status.HTTP_403_FORBIDDEN, CSRF_DETAIL)

    def _anonymous(self, request: Request, *, page: bool) -> HTTPException:
        headers: dict[str, str] = {}
        if request.cookies.get(self.cookie.name):  # a stale cookie: have the browser drop it
            stale = Response()
            self.clear_cookie(request, stale)
            headers["set-cookie"] = stale.headers["set-cookie"]
        if page:
            query = request.url.query
            target = request.url.path + (f"?{query}" if query else "")
            headers["location"] = login_url(target)
            return HTTPException(status.HTTP_303_SEE_OTHER, "log in first", headers=headers)
        headers["www-authenticate"] = "Bearer"
        return HTTPException(status.HTTP_401_UNAUTHORIZED, ANONYMOUS_DETAIL, headers=headers)


async def _form_token(request: Request) -> str | None:
    """The ``csrf_token`` field of a form body (one FastAPI parsed, or a urlencoded one)."""
    parsed = getattr(request, "_form", None)  # a form FastAPI already read for the route
    if parsed is not None:
        value = parsed.get(csrf.FORM_FIELD)
        return value if isinstance(value, str) else None
    length = request.headers.get("content-length")
    if length is None or not length.isdigit() or int(length) > MAX_CSRF_FORM_BYTES:
        return None
    return csrf.form_token(request.headers.get("content-type"), await request.body())


def client_address(request: Request) -> str:
    """The client's address (behind a trusted proxy, uvicorn puts the forwarded one here)."""
    return request.client.host if request.client else "unknown"
