"""User API tokens: ``wk_`` plus 256 random bits, stored only as a SHA-256 digest.

A slow password hash would buy nothing here: the token is random and long, so a stolen
digest cannot be reversed, and a fast digest keeps every API call cheap. The first characters
(`display_prefix`) are kept in clear so a person can tell tokens apart in a list.
"""

from __future__ import annotations

import hashlib
import re
import secrets

#: Every user token starts with this, so scanners and people recognise it; the manager token
#: (``<data-dir>/api-token``) does not have it.
TOKEN_PREFIX = "wk_"
_SHAPE = re.compile(r"wk_[A-Za-z0-9_-]{43}")
#: Characters of a token shown in lists: ``wk_`` and the first 6 random ones.
PREFIX_CHARS = len(TOKEN_PREFIX) + 6
#: A token's name: what it is for, e.g. ``grafana`` or ``backup-script``.
TOKEN_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


def generate_token() -> str:
    """A new token, shown to its owner once."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def looks_like_user_token(text: str) -> bool:
    """Whether ``text`` has the shape of a user token (it may still be unknown or revoked)."""
    return _SHAPE.fullmatch(text) is not None


def digest(secret: str) -> str:
    """The hex SHA-256 of a high-entropy secret (a token or a session id): what is stored."""
    return hashlib.sha256(secret.encode()).hexdigest()


def display_prefix(token: str) -> str:
    return token[:PREFIX_CHARS]


def check_token_name(name: str) -> None:
    """Raise ValueError unless ``name`` is a valid token name."""
    if not re.fullmatch(TOKEN_NAME_PATTERN, name):
        raise ValueError(
            f"{name!r} is not a token name: 1 to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
