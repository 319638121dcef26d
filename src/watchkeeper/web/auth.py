"""The manager token: a random secret in ``<data-dir>/api-token`` that acts as an admin.

The first start writes it (mode 0600); scripts on the manager's machine send it as
``Authorization: Bearer <token>``. Users, roles, sessions and per-user API tokens are in
`watchkeeper.web.security`, whose ``Security(db, manager_token=token)`` accepts this token
too (as the admin-equivalent principal ``manager-token``). `TokenAuth` admits this token
only, for apps that have no users.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from fastapi import HTTPException, Request, status

from watchkeeper.private import TOKEN_FILE, private_dir

__all__ = ["TOKEN_FILE", "TokenAuth", "load_or_create_token"]


def load_or_create_token(data_dir: Path) -> str:
    """Read the API token, creating it (readable by the owner only) on first start."""
    path = data_dir / TOKEN_FILE
    if not path.exists():
        private_dir(data_dir)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32) + "\n")
    return path.read_text().strip()


class TokenAuth:
    """A FastAPI dependency that admits requests carrying the manager's token."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()

    async def __call__(self, request: Request) -> None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), self._token
        ):
            raise HTTPException(
                status_code=status.HTTP_401_UNAUTHORIZED,
                detail="an API token is required: Authorization: Bearer <token>",
                headers={"WWW-Authenticate": "Bearer"},
            )
