"""Roles: viewer < operator < admin. Each role may do everything the ones below it may.

- viewer: reads every page and API route (states, history, graphs, configuration versions).
- operator: also acts on what it sees: acknowledge, downtime, check now, run remediation.
- admin: also manages users, API tokens of other users, worker keys, and pushes candidates.
"""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    """A user's (or token's) role; compare with `allows`, never with ``<`` on the strings."""

    #: Reads everything; changes nothing.
    VIEWER = "viewer"
    #: Acts on alarms and checks: acknowledge, downtime, check now, remediation.
    OPERATOR = "operator"
    #: Manages users, tokens, keys and configuration.
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        """0 for viewer, 1 for operator, 2 for admin."""
        return _RANKS[self]

    def allows(self, needed: Role) -> bool:
        """Whether this role may do what ``needed`` may."""
        return self.rank >= needed.rank

    @classmethod
    def parse(cls, text: str) -> Role:
        """The role named ``text``; ValueError naming the choices otherwise."""
        try:
            return cls(text.strip().lower())
        except ValueError:
            raise ValueError(f"{text!r} is not a role: use one of {', '.join(NAMES)}") from None


_RANKS = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}
#: Role names from least to most allowed, for CLI choices and messages.
NAMES = tuple(r.value for r in sorted(Role, key=lambda r: r.rank))


def lowest(*roles: Role) -> Role:
    """The least allowed of ``roles``: a token never does more than its owner may now."""
    return min(roles, key=lambda r: r.rank)
