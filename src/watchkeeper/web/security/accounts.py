"""Account operations shared by the CLI and the API: the rules, then the store.

Names and passwords are checked here, passwords hashed (in a thread: argon2 takes ~0.1 s of
CPU on purpose), and a token's role kept at or below its owner's. Nothing here knows HTTP.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from watchkeeper.document.durations import parse_duration
from watchkeeper.errors import Forbidden, InvalidArgument
from watchkeeper.store import users as users_store
from watchkeeper.store.db import Database
from watchkeeper.web.security import tokens
from watchkeeper.web.security.passwords import (
    Passwords,
    check_password_rules,
    generate_password,
)
from watchkeeper.web.security.roles import Role

#: A user name: what people type at the login form, and what audit entries show.
USER_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"
#: The account `ensure_first_admin` creates.
FIRST_ADMIN = "admin"


class InvalidAccountInput(InvalidArgument):
    """A name, password, role or duration is not acceptable."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(None, message or (self.__doc__ or "").strip())


class RoleTooHigh(Forbidden):
    """A token cannot have more than its owner's role."""


def check_user_name(name: str) -> None:
    """Raise `InvalidAccountInput` unless ``name`` is a valid user name."""
    if not re.fullmatch(USER_NAME_PATTERN, name):
        raise InvalidAccountInput(
            f"{name!r} is not a user name: 1 to 64 letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit"
        )


def check_new_password(password: str) -> None:
    try:
        check_password_rules(password)
    except ValueError as exc:
        raise InvalidAccountInput(str(exc)) from None


async def hash_password(passwords: Passwords, password: str) -> str:
    """The argon2id hash, computed off the event loop."""
    return await asyncio.to_thread(passwords.hash, password)


@dataclass(frozen=True, slots=True)
class NewUser:
    user: users_store.User
    #: The generated password, shown once; None when the caller chose one.
    generated_password: str | None


async def create_user(
    db: Database,
    *,
    name: str,
    role: Role,
    password: str | None,
    passwords: Passwords,
    now: datetime | None = None,
) -> NewUser:
    """Add a user; without ``password`` one is generated and returned once.

    `InvalidAccountInput` for a bad name or password, `UserConflict` if the name is taken.
    """
    check_user_name(name)
    generated = None
    if password is None:
        password = generated = generate_password()
    check_new_password(password)
    created = await users_store.add_user(
        db,
        name=name,
        password_hash=await hash_password(passwords, password),
        role=role.value,
        now=now or datetime.now(UTC),
    )
    assert created is not None  # only `only_if_none` returns None
    return NewUser(created, generated)


async def set_password(
    db: Database,
    name: str,
    *,
    password: str | None,
    passwords: Passwords,
    now: datetime | None = None,
) -> str | None:
    """Give ``name`` a new password (generated and returned when None); ends its sessions."""
    generated = None
    if password is None:
        password = generated = generate_password()
    check_new_password(password)
    await users_store.update_user(
        db,
        name,
        password_hash=await hash_password(passwords, password),
        now=now or datetime.now(UTC),
    )
    return generated


async def ensure_first_admin(
    db: Database, *, passwords: Passwords | None = None, now: datetime | None = None
) -> str | None:
    """On a store with no user at all, create ``admin`` with a random password and return it.

    Otherwise (or when another manager just did it) None. The caller prints the password
    once; it is stored only as a hash, and ``watchkeeper user passwd admin`` sets a new one.
    """
    async with db.session() as session:
        if await users_store.count_users(session):
            return None
    password = generate_password()
    created = await users_store.add_user(
        db,
        name=FIRST_ADMIN,
        password_hash=await hash_password(passwords or Passwords(), password),
        role=Role.ADMIN.value,
        now=now or datetime.now(UTC),
        only_if_none=True,
    )
    return None if created is None else password


def parse_expiry(text: str | None, *, now: datetime) -> datetime | None:
    """``30d`` -> the time 30 days after ``now``; None for no expiry."""
    if text is None or text.strip() in ("", "never"):
        return None
    try:
        length = parse_duration(text.strip())
    except ValueError as exc:
        raise InvalidAccountInput(f"expiry {exc}") from None
    if length <= timedelta(0):
        raise InvalidAccountInput(f"expiry {text!r} must be longer than zero")
    try:
        return now + length
    except OverflowError:
        raise InvalidAccountInput(f"expiry {text!r} is too far away") from None


@dataclass(frozen=True, slots=True)
class NewToken:
    token: users_store.ApiToken
    #: The token itself, shown once; only its digest is stored.
    secret: str


async def create_token(
    db: Database,
    *,
    owner: str,
    name: str,
    role: Role | None,
    expires_at: datetime | None,
    now: datetime | None = None,
) -> NewToken:
    """Make an API token for ``owner`` with ``role`` (default: the owner's role).

    `UserNotFound`, `InvalidAccountInput` (bad name, disabled owner) or `RoleTooHigh`.
    """
    try:
        tokens.check_token_name(name)
    except ValueError as exc:
        raise InvalidAccountInput(str(exc)) from None
    now = now or datetime.now(UTC)
    if expires_at is not None and expires_at <= now:
        raise InvalidAccountInput("a token's expiry must be in the future")
    async with db.session() as session:
        user = await users_store.get_user(session, owner)
    if user is None:
        raise users_store.UserNotFound(f"no user named {owner!r}")
    if user.disabled:
        raise InvalidAccountInput(f"user {owner!r} is disabled: it cannot get tokens")
    owner_role = Role(user.role)
    role = role or owner_role
    if not owner_role.allows(role):
        raise RoleTooHigh(
            f"a token of {owner!r} can have at most the {owner_role} role, not {role}"
        )
    secret = tokens.generate_token()
    stored = await users_store.add_token(
        db,
        owner=owner,
        name=name,
        token_hash=tokens.digest(secret),
        prefix=tokens.display_prefix(secret),
        role=role.value,
        now=now,
        expires_at=expires_at,
    )
    return NewToken(stored, secret)
