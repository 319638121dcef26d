"""Users, roles, sessions, CSRF, API tokens and login rate limiting for the web interface.

`Security` (in `guard`) is the one object the app needs: ``security.require(Role.OPERATOR)``
is a route dependency, and the login and account routers (``web.login``,
``web.accounts_api``) are built from it. The other modules are pure and small.
"""

from __future__ import annotations

from watchkeeper.web.security.accounts import ensure_first_admin
from watchkeeper.web.security.guard import (
    LoginAccepted,
    LoginOutcome,
    LoginRejected,
    LoginThrottled,
    Security,
)
from watchkeeper.web.security.passwords import Passwords
from watchkeeper.web.security.principal import Principal
from watchkeeper.web.security.ratelimit import LimitPolicy, LoginThrottle
from watchkeeper.web.security.roles import Role
from watchkeeper.web.security.sessions import CookiePolicy, SessionPolicy

__all__ = [
    "CookiePolicy",
    "LimitPolicy",
    "LoginAccepted",
    "LoginOutcome",
    "LoginRejected",
    "LoginThrottle",
    "LoginThrottled",
    "Passwords",
    "Principal",
    "Role",
    "Security",
    "SessionPolicy",
    "ensure_first_admin",
]
