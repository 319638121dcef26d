"""CSRF protection: a synchronizer token per login session.

Every session gets a random token when it is created (stored with it). A request that is
authenticated by the session cookie and uses an unsafe method must carry the same token in
the ``X-CSRF-Token`` header (htmx: ``hx-headers``) or in the ``csrf_token`` field of a form
(``application/x-www-form-urlencoded``). Requests with a Bearer token are exempt: a browser
never attaches one on its own, so another site cannot make it send one.

The login form is older than any session: it uses a double-submit token instead, a random
value in a short-lived cookie that the form must repeat (`LOGIN_COOKIE`).
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import parse_qs

#: Methods that change nothing, by HTTP's definition; everything else needs the token.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
HEADER = "x-csrf-token"
FORM_FIELD = "csrf_token"
#: The double-submit cookie of the login form (path /login, SameSite=Strict, HttpOnly).
LOGIN_COOKIE = "wk_login_csrf"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
MAX_FORM_FIELDS = 64


def new_token() -> str:
    return secrets.token_urlsafe(32)


def is_unsafe(method: str) -> bool:
    """Whether a request with ``method`` may change something and so needs the token."""
    return method.upper() not in SAFE_METHODS


def matches(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison; a missing or empty token on either side never matches."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def form_token(content_type: str | None, body: bytes) -> str | None:
    """The ``csrf_token`` field of a urlencoded form body, or None."""
    if content_type is None or content_type.split(";")[0].strip().lower() != FORM_CONTENT_TYPE:
        return None
    values = parse_form(body).get(FORM_FIELD)
    return values[0] if values else None


def parse_form(body: bytes) -> dict[str, list[str]]:
    """A urlencoded form body as ``{field: [values]}``; bad bytes are replaced, not fatal.

    A body with more than `MAX_FORM_FIELDS` fields reads as empty: no form of ours has that many.
    """
    try:
        return parse_qs(
            body.decode("utf-8", errors="replace"),
            keep_blank_values=True,
            max_num_fields=MAX_FORM_FIELDS,
        )
    except ValueError:
        return {}
