"""The standby's gate: a manager that does not lead serves reads, and answers what only the
leader can do with 503 naming the leader (``X-Watchkeeper-Leader``: its web address).

Allowed on a standby, because they are not the leader's work: logging in and out (sessions
and tokens are rows any manager writes), accounts and API tokens, and pushed documents
(the intake's import is serialised by a database lock, so it is one intake whichever
manager takes the push; the leader runs the new version within a heartbeat). The gate
runs after the caller is known: an anonymous caller gets 401, never the leader's address.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import HTTPException, Request, status

from watchkeeper.web.security import Security

#: Methods that change nothing.
SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
#: Path prefixes a standby serves for every method.
ANY_MANAGER = (
    "/login",
    "/logout",
    "/api/v1/session",
    "/api/v1/config/candidates",
    "/api/v1/tokens",
    "/api/v1/users",
    "/account",
)
LEADER_HEADER = "X-Watchkeeper-Leader"


def standby_gate(
    security: Security,
    may_write: Callable[[], bool],
    leader: Callable[[], tuple[str, str]],
) -> Callable[[Request], Awaitable[None]]:
    """An app-wide dependency: 503 for leader-only requests while ``may_write()`` is false.

    ``leader()`` gives the leader's node name and web address ("" when not known yet).
    """

    async def gate(request: Request) -> None:
        if request.method in SAFE or request.url.path.startswith(ANY_MANAGER) or may_write():
            return
        if await security.authenticate(request) is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "log in or send a token")
        node, url = leader()
        where = f"{node} at {url}" if node and url else node or "not known yet (an election runs)"
        headers = {"Retry-After": "2"}
        if url:
            headers[LEADER_HEADER] = url
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"this manager is a standby, only the leader does this; the leader is {where}",
            headers=headers,
        )

    return gate
