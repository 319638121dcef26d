"""Login sessions: random ids in a cookie, the session itself in the database.

The cookie ``wk_session`` carries only a random id (256 bits); the database keeps its SHA-256,
the user, the CSRF token and the times. Logging out, changing a password, disabling or
removing a user deletes the rows, so the cookie stops working at once on every manager that
shares the database.

A session ends at the first of: `SessionPolicy.idle` seconds without a request, or
`SessionPolicy.absolute` seconds after login, whatever the activity.

Cookie attributes:

- ``HttpOnly``: page scripts never see the id, so an injected script cannot steal it.
- ``SameSite=Lax``: other sites' forms, frames and fetches do not carry it, yet a link from
  a notification e-mail or a chat into a Watchkeeper page arrives logged in. ``Strict``
  would show the login page for every such link; the CSRF token covers what Lax allows.
- ``Secure``: set when the request came over HTTPS (directly or, through a trusted reverse
  proxy, per ``X-Forwarded-Proto``), or always when `CookiePolicy.secure` is True. Plain
  HTTP on the loopback address (``watchkeeper up``) needs it off, or the browser would drop
  the cookie; `CookiePolicy.secure` False forces it off.
- ``Path=/``, no ``Domain``: the cookie goes to this host only.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Literal

#: The session cookie's name.
COOKIE_NAME = "wk_session"


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionPolicy:
    """How long sessions live; defaults suit a person at a console, not a wall display."""

    #: A session unused this long (seconds) ends; an open page polling for updates keeps it.
    idle: float = 2 * 3600.0
    #: A session ends this long after login, whatever the activity.
    absolute: float = 24 * 3600.0
    #: ``last seen`` is written at most this often, not on every request.
    touch_every: float = 60.0


@dataclass(frozen=True, slots=True)
class CookiePolicy:
    """The session cookie's attributes; see the module docstring for why."""

    name: str = COOKIE_NAME
    #: None: Secure when the request is https; True: always; False: never.
    secure: bool | None = None
    #: "lax" (the default, see above) or "strict".
    same_site: Literal["lax", "strict"] = "lax"

    def is_secure(self, scheme: str) -> bool:
        return self.secure if self.secure is not None else scheme == "https"


def new_session_id() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionTimes:
    """A session's clock, in epoch seconds."""

    created: float
    last_seen: float
    expires: float


def expired(times: SessionTimes, policy: SessionPolicy, now: float) -> str | None:
    """Why the session is over at ``now`` ("idle" or "expired"), or None if it is alive."""
    if now >= times.expires:
        return "expired"
    if now - times.last_seen >= policy.idle:
        return "idle"
    return None


def needs_touch(times: SessionTimes, policy: SessionPolicy, now: float) -> bool:
    """Whether to write ``last seen`` now (rarely: it is a database write)."""
    return now - times.last_seen >= policy.touch_every
