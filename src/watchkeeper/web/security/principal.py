"""Who is making a request, as far as authorisation cares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from watchkeeper.web.security.roles import Role

#: How the caller proved who it is: a login session cookie, a user's API token, or the
#: manager token from ``<data-dir>/api-token`` (admin-equivalent; it names no user).
Via = Literal["session", "token", "manager-token"]

#: The name the manager token acts under in logs and audit entries.
MANAGER_TOKEN_NAME = "manager-token"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller; routes get one from ``Security.require(role)``."""

    name: str
    role: Role
    via: Via
    #: The session's CSRF token, for forms and ``X-CSRF-Token``; None unless ``via`` is session.
    csrf_token: str | None = None
    #: The API token's id when ``via`` is token.
    token_id: int | None = None

    @property
    def is_user(self) -> bool:
        """Whether ``name`` is a user account (the manager token is not one)."""
        return self.via != "manager-token"

    def allows(self, needed: Role) -> bool:
        return self.role.allows(needed)

    def log_context(self) -> dict[str, object]:
        return {"name": self.name, "role": self.role.value, "via": self.via}
