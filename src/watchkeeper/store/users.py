"""Users, login sessions and API tokens: the accounts people and scripts log in with.

Only digests and hashes are stored: argon2id for passwords, SHA-256 for session ids and API
tokens (both random and long). Hashing and checking happen in ``web.security``; this module
stores and finds. Roles are plain strings here (`web.security.roles.Role` values).

Every write that could take the last enabled admin away (demote, disable, remove) checks
that inside its own transaction, with the admin rows locked, so two admins demoting each other
at once cannot both succeed.

Readers take an `AsyncSession`; writers take the `Database` and own their transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from watchkeeper.errors import Conflict, NotFound, StoreError
from watchkeeper.store.db import Database
from watchkeeper.store.tables import ApiTokenRow, UserRow, UserSessionRow

#: The role that manages users; the store keeps at least one enabled user with it.
ADMIN_ROLE = "admin"


class UserConflict(Conflict):
    """A user with this name already exists."""


class UserNotFound(NotFound):
    """There is no user with this name."""


class LastAdmin(Conflict):
    """This would leave no enabled admin: make another user admin first."""


@dataclass(frozen=True, slots=True, kw_only=True)
class User:
    """An account, without its password hash."""

    name: str
    role: str
    disabled: bool
    created_at: datetime
    password_changed_at: datetime
    last_login_at: datetime | None = None

    @classmethod
    def from_row(cls, row: UserRow) -> User:
        return cls(
            name=row.name,
            role=row.role,
            disabled=row.disabled,
            created_at=row.created_at,
            password_changed_at=row.password_changed_at,
            last_login_at=row.last_login_at,
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready; there is no hash to leak."""
        return {
            "name": self.name,
            "role": self.role,
            "disabled": self.disabled,
            "created_at": self.created_at.isoformat(),
            "password_changed_at": self.password_changed_at.isoformat(),
            "last_login_at": None if self.last_login_at is None else self.last_login_at.isoformat(),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Credentials:
    """A user and its password hash, for the login path only."""

    user: User
    password_hash: str = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionRecord:
    """A login session with what authorisation needs of its user."""

    id_hash: str
    user_name: str
    #: The user's role now (a role change applies to open sessions at once).
    role: str
    disabled: bool
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    address: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiToken:
    """A user's API token, without its secret (which nobody sees after it is made)."""

    id: int
    name: str
    owner: str
    prefix: str
    role: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def from_row(cls, row: ApiTokenRow) -> ApiToken:
        return cls(
            id=row.id,
            name=row.name,
            owner=row.owner,
            prefix=row.prefix,
            role=row.role,
            created_at=row.created_at,
            expires_at=row.expires_at,
            last_used_at=row.last_used_at,
            revoked_at=row.revoked_at,
        )

    def usable(self, now: datetime) -> bool:
        """Not revoked and not expired at ``now``."""
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    def as_dict(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        return {
            "id": self.id,
            "name": self.name,
            "owner": self.owner,
            "prefix": self.prefix,
            "role": self.role,
            "created_at": self.created_at.isoformat(),
            "expires_at": iso(self.expires_at),
            "last_used_at": iso(self.last_used_at),
            "revoked_at": iso(self.revoked_at),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenMatch:
    """A token found by its digest, with its owner's state now."""

    token: ApiToken
    owner_role: str
    owner_disabled: bool


# --- users ------------------------------------------------------------------------------------


async def count_users(session: AsyncSession) -> int:
    return int(await session.scalar(sa.select(sa.func.count()).select_from(UserRow)) or 0)


async def list_users(session: AsyncSession) -> list[User]:
    rows = await session.scalars(sa.select(UserRow).order_by(UserRow.name))
    return [User.from_row(r) for r in rows]


async def get_user(session: AsyncSession, name: str) -> User | None:
    row = await session.get(UserRow, name)
    return None if row is None else User.from_row(row)


async def get_credentials(session: AsyncSession, name: str) -> Credentials | None:
    row = await session.get(UserRow, name)
    if row is None:
        return None
    return Credentials(user=User.from_row(row), password_hash=row.password_hash)


async def add_user(
    db: Database,
    *,
    name: str,
    password_hash: str,
    role: str,
    now: datetime,
    only_if_none: bool = False,
) -> User | None:
    """Create a user; `UserConflict` if the name is taken.

    With ``only_if_none`` the user is created only when there is no user at all (the first
    admin); otherwise None, also when another manager created one at the same moment.
    """
    row = UserRow(
        name=name,
        password_hash=password_hash,
        role=role,
        disabled=False,
        created_at=now,
        password_changed_at=now,
        last_login_at=None,
    )
    try:
        async with db.begin() as session:
            if only_if_none:
                if await count_users(session):
                    return None
            elif await session.get(UserRow, name) is not None:
                raise UserConflict(f"a user named {name!r} already exists")
            session.add(row)
    except UserConflict:
        raise
    except StoreError as exc:
        if isinstance(exc.__cause__, sa.exc.IntegrityError):
            if only_if_none:
                return None
            raise UserConflict(f"a user named {name!r} already exists") from exc
        raise
    return User.from_row(row)


async def update_user(
    db: Database,
    name: str,
    *,
    now: datetime,
    role: str | None = None,
    disabled: bool | None = None,
    password_hash: str | None = None,
) -> User:
    """Change a user; `UserNotFound`, or `LastAdmin` if no enabled admin would be left.

    A new password or disabling ends the user's sessions: whoever held one must log in again.
    """
    async with db.begin() as session:
        row = await _locked_user(session, name)
        demoted = role is not None and role != ADMIN_ROLE
        if (demoted or disabled) and _enabled_admin(row):
            await _keep_an_admin(session, name)
        if role is not None:
            row.role = role
        if disabled is not None:
            row.disabled = disabled
        if password_hash is not None:
            row.password_hash = password_hash
            row.password_changed_at = now
        if password_hash is not None or disabled:
            await session.execute(sa.delete(UserSessionRow).where(UserSessionRow.user_name == name))
        return User.from_row(row)


async def remove_user(db: Database, name: str) -> User:
    """Delete a user with its sessions and tokens; `UserNotFound` or `LastAdmin`."""
    async with db.begin() as session:
        row = await _locked_user(session, name)
        if _enabled_admin(row):
            await _keep_an_admin(session, name)
        removed = User.from_row(row)
        # Explicit deletes, not only ON DELETE CASCADE: the ORM must not keep stale rows.
        await session.execute(sa.delete(UserSessionRow).where(UserSessionRow.user_name == name))
        await session.execute(sa.delete(ApiTokenRow).where(ApiTokenRow.owner == name))
        await session.delete(row)
        return removed


async def record_login(
    db: Database, name: str, *, now: datetime, password_hash: str | None = None
) -> None:
    """Note a successful login; store ``password_hash`` when it was rehashed with new costs."""
    values: dict[str, Any] = {"last_login_at": now}
    if password_hash is not None:
        values["password_hash"] = password_hash
    async with db.begin() as session:
        await session.execute(sa.update(UserRow).where(UserRow.name == name).values(**values))


async def _locked_user(session: AsyncSession, name: str) -> UserRow:
    row = await session.scalar(sa.select(UserRow).where(UserRow.name == name).with_for_update())
    if row is None:
        raise UserNotFound(f"no user named {name!r}")
    return row


def _enabled_admin(row: UserRow) -> bool:
    return row.role == ADMIN_ROLE and not row.disabled


async def _keep_an_admin(session: AsyncSession, leaving: str) -> None:
    """Raise `LastAdmin` unless an enabled admin other than ``leaving`` remains.

    The admin rows are locked, so a concurrent demotion waits and then sees this one.
    """
    others = await session.scalars(
        sa.select(UserRow.name)
        .where(UserRow.role == ADMIN_ROLE, UserRow.disabled.is_(False), UserRow.name != leaving)
        .with_for_update()
    )
    if not others.first():
        raise LastAdmin(f"{leaving!r} is the last enabled admin: make another user admin first")


# --- sessions ---------------------------------------------------------------------------------


async def create_session(
    db: Database,
    *,
    id_hash: str,
    user_name: str,
    csrf_token: str,
    now: datetime,
    expires_at: datetime,
    address: str | None,
    replaces: str | None = None,
) -> None:
    """Store a new session; ``replaces`` (the digest of the browser's old one) is deleted."""
    async with db.begin() as session:
        if replaces is not None:
            await session.execute(
                sa.delete(UserSessionRow).where(UserSessionRow.id_hash == replaces)
            )
        session.add(
            UserSessionRow(
                id_hash=id_hash,
                user_name=user_name,
                csrf_token=csrf_token,
                created_at=now,
                last_seen_at=now,
                expires_at=expires_at,
                address=None if address is None else address[:64],
            )
        )


async def get_session(session: AsyncSession, id_hash: str) -> SessionRecord | None:
    found = (
        await session.execute(
            sa.select(UserSessionRow, UserRow.role, UserRow.disabled)
            .join(UserRow, UserRow.name == UserSessionRow.user_name)
            .where(UserSessionRow.id_hash == id_hash)
        )
    ).first()
    if found is None:
        return None
    row, role, disabled = found
    return SessionRecord(
        id_hash=row.id_hash,
        user_name=row.user_name,
        role=role,
        disabled=disabled,
        csrf_token=row.csrf_token,
        created_at=row.created_at,
        last_seen_at=row.last_seen_at,
        expires_at=row.expires_at,
        address=row.address,
    )


async def touch_session(db: Database, id_hash: str, *, now: datetime) -> None:
    async with db.begin() as session:
        await session.execute(
            sa.update(UserSessionRow)
            .where(UserSessionRow.id_hash == id_hash)
            .values(last_seen_at=now)
        )


async def delete_session(db: Database, id_hash: str) -> bool:
    async with db.begin() as session:
        result = await session.execute(
            sa.delete(UserSessionRow).where(UserSessionRow.id_hash == id_hash)
        )
    return bool(getattr(result, "rowcount", 0))


async def prune_sessions(db: Database, *, now: datetime, idle_since: datetime) -> int:
    """Delete sessions past their absolute end or unused since ``idle_since``; how many."""
    async with db.begin() as session:
        result = await session.execute(
            sa.delete(UserSessionRow).where(
                sa.or_(UserSessionRow.expires_at <= now, UserSessionRow.last_seen_at <= idle_since)
            )
        )
    return int(getattr(result, "rowcount", 0) or 0)


async def count_sessions(session: AsyncSession, user_name: str) -> int:
    query = sa.select(sa.func.count()).where(UserSessionRow.user_name == user_name)
    return int(await session.scalar(query) or 0)


# --- API tokens -------------------------------------------------------------------------------


async def add_token(
    db: Database,
    *,
    owner: str,
    name: str,
    token_hash: str,
    prefix: str,
    role: str,
    now: datetime,
    expires_at: datetime | None,
) -> ApiToken:
    """Store a token's digest for ``owner``; `UserNotFound` if there is no such user."""
    row = ApiTokenRow(
        token_hash=token_hash,
        prefix=prefix,
        name=name,
        owner=owner,
        role=role,
        created_at=now,
        expires_at=expires_at,
        last_used_at=None,
        revoked_at=None,
    )
    async with db.begin() as session:
        if await session.get(UserRow, owner) is None:
            raise UserNotFound(f"no user named {owner!r}")
        session.add(row)
        await session.flush()
        return ApiToken.from_row(row)


async def list_tokens(
    session: AsyncSession, *, owner: str | None = None, include_revoked: bool = True
) -> list[ApiToken]:
    """Tokens by id, of ``owner`` or of everyone."""
    query = sa.select(ApiTokenRow).order_by(ApiTokenRow.id)
    if owner is not None:
        query = query.where(ApiTokenRow.owner == owner)
    if not include_revoked:
        query = query.where(ApiTokenRow.revoked_at.is_(None))
    return [ApiToken.from_row(r) for r in await session.scalars(query)]


async def get_token(session: AsyncSession, token_id: int) -> ApiToken | None:
    row = await session.get(ApiTokenRow, token_id)
    return None if row is None else ApiToken.from_row(row)


async def find_token(session: AsyncSession, token_hash: str) -> TokenMatch | None:
    """The token with this digest (revoked or expired too: the caller decides) and its owner."""
    found = (
        await session.execute(
            sa.select(ApiTokenRow, UserRow.role, UserRow.disabled)
            .join(UserRow, UserRow.name == ApiTokenRow.owner)
            .where(ApiTokenRow.token_hash == token_hash)
        )
    ).first()
    if found is None:
        return None
    row, role, disabled = found
    return TokenMatch(token=ApiToken.from_row(row), owner_role=role, owner_disabled=disabled)


async def touch_token(db: Database, token_id: int, *, now: datetime) -> None:
    async with db.begin() as session:
        await session.execute(
            sa.update(ApiTokenRow).where(ApiTokenRow.id == token_id).values(last_used_at=now)
        )


async def revoke_token(
    db: Database, token_id: int, *, now: datetime, owner: str | None = None
) -> ApiToken | None:
    """Revoke a token (once: again keeps the first time); None if unknown or not ``owner``'s."""
    async with db.begin() as session:
        row = await session.get(ApiTokenRow, token_id)
        if row is None or (owner is not None and row.owner != owner):
            return None
        if row.revoked_at is None:
            row.revoked_at = now
        return ApiToken.from_row(row)
