"""Who is on a page: the principal a route's role requirement admitted.

Routers take the role requirements as dependencies (``dependencies=[Depends(viewer)]``)
and read the caller back from ``request.state``, where `Security` leaves it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import HTTPException, Request, status

from watchkeeper.web.security import Principal
from watchkeeper.web.security.guard import STATE_KEY

#: A route dependency that admits callers with a role and returns who they are.
Requirement = Callable[..., Awaitable[Principal]]


def principal_of(request: Request) -> Principal:
    """The caller the route's requirement admitted (it always ran before the route)."""
    found = getattr(request.state, STATE_KEY, None)
    if not isinstance(found, Principal):  # a route mounted without a requirement
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "log in first")
    return found
