"""``/api/v1/tokens`` (everyone, for their own tokens; admins for all) and ``/api/v1/users``
(admins only).

Secrets leave the server once: a new token in the answer that creates it, a generated
password in the answer that creates the user (or sets it). Lists never carry them. A
refused operation (no such user, the last admin, a role too high, a bad name) is a request
error that `watchkeeper.web.errors` answers with its status.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field

from watchkeeper.store import users as users_store
from watchkeeper.web.listing import Listing, PathId, whole
from watchkeeper.web.security import accounts
from watchkeeper.web.security.guard import Security
from watchkeeper.web.security.passwords import MAX_PASSWORD_LENGTH
from watchkeeper.web.security.principal import Principal
from watchkeeper.web.security.roles import Role
from watchkeeper.web.security.tokens import TOKEN_NAME_PATTERN

logger = logging.getLogger(__name__)


class TokenOut(BaseModel):
    id: int
    name: str
    owner: str
    #: The first characters, to tell tokens apart; the rest is never shown again.
    prefix: str
    role: Role
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenOut):
    #: The token itself: shown in this answer only.
    token: str


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=TOKEN_NAME_PATTERN)
    #: Default: the owner's role; never more.
    role: Role | None = None
    #: A duration such as ``30d`` or ``12h``; none means the token does not expire.
    expires: str | None = Field(default=None, max_length=32)
    #: Whose token it is (default: the caller). Admins only for someone else.
    owner: str | None = Field(default=None, max_length=128)


class UserOut(BaseModel):
    name: str
    role: Role
    disabled: bool
    created_at: datetime
    password_changed_at: datetime
    last_login_at: datetime | None


class UserCreated(UserOut):
    #: The generated password when none was given: shown in this answer only.
    password: str | None = None


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=accounts.USER_NAME_PATTERN)
    role: Role
    #: Omit to have a strong one generated (and returned once).
    password: str | None = Field(default=None, max_length=MAX_PASSWORD_LENGTH)


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    disabled: bool | None = None
    #: A new password; the user's sessions end.
    password: str | None = Field(default=None, max_length=MAX_PASSWORD_LENGTH)


def _token_out(token: users_store.ApiToken) -> TokenOut:
    return TokenOut.model_validate(token, from_attributes=True)


def _user_out(user: users_store.User) -> UserOut:
    return UserOut.model_validate(user, from_attributes=True)


def create_accounts_router(security: Security) -> APIRouter:
    """Token and user management under ``/api/v1``; each route names the role it needs."""
    router = APIRouter(prefix="/api/v1")
    viewer = Depends(security.require(Role.VIEWER))
    admin = Depends(security.require(Role.ADMIN))

    @router.get("/tokens", response_model=Listing[TokenOut], tags=["tokens"])
    async def list_tokens(
        principal: Principal = viewer,
        owner: Annotated[str | None, Query(max_length=128)] = None,
        include_revoked: bool = True,
    ) -> dict[str, Any]:
        """The caller's tokens; an admin sees everyone's (or ``owner``'s)."""
        if not principal.allows(Role.ADMIN):
            if owner is not None and owner != principal.name:
                raise HTTPException(status.HTTP_403_FORBIDDEN, "only an admin sees others' tokens")
            owner = principal.name
        async with security.db.session() as session:
            found = await users_store.list_tokens(
                session, owner=owner, include_revoked=include_revoked
            )
        return whole([_token_out(t) for t in found])

    @router.post(
        "/tokens",
        response_model=TokenCreated,
        status_code=status.HTTP_201_CREATED,
        tags=["tokens"],
        responses={403: {}, 404: {}, 422: {}},
    )
    async def create_token(body: TokenCreate, principal: Principal = viewer) -> TokenCreated:
        """Make a token; its secret is in this answer and nowhere else, ever."""
        if principal.via == "token":
            # A leaked token must not be able to mint successors that outlive its revocation.
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                "API tokens are made from a login session, the CLI or the manager token",
            )
        owner = body.owner or (principal.name if principal.is_user else None)
        if owner is None:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT, "owner is required with the manager token"
            )
        if owner != principal.name and not principal.allows(Role.ADMIN):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "only an admin makes others' tokens")
        now = security.now()
        made = await accounts.create_token(
            security.db,
            owner=owner,
            name=body.name,
            role=body.role,
            expires_at=accounts.parse_expiry(body.expires, now=now),
            now=now,
        )
        logger.info(
            "%s made API token %d (%s) for %s",
            principal.name,
            made.token.id,
            made.token.name,
            owner,
            extra={"action": "token_created", "by": principal.log_context(), "id": made.token.id},
        )
        return TokenCreated(**_token_out(made.token).model_dump(), token=made.secret)

    @router.delete(
        "/tokens/{token_id}", response_model=TokenOut, tags=["tokens"], responses={404: {}}
    )
    async def revoke_token(token_id: PathId, principal: Principal = viewer) -> TokenOut:
        """Revoke a token: the caller's own, or anyone's for an admin."""
        owner = None if principal.allows(Role.ADMIN) else principal.name
        revoked = await users_store.revoke_token(
            security.db, token_id, now=security.now(), owner=owner
        )
        if revoked is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no token {token_id} of yours")
        logger.info(
            "%s revoked API token %d",
            principal.name,
            token_id,
            extra={"action": "token_revoked", "by": principal.log_context(), "id": token_id},
        )
        return _token_out(revoked)

    @router.get("/users", response_model=Listing[UserOut], tags=["users"], dependencies=[admin])
    async def list_users() -> dict[str, Any]:
        async with security.db.session() as session:
            return whole([_user_out(u) for u in await users_store.list_users(session)])

    @router.post(
        "/users",
        response_model=UserCreated,
        status_code=status.HTTP_201_CREATED,
        tags=["users"],
        responses={409: {}, 422: {}},
    )
    async def create_user(body: UserCreate, principal: Principal = admin) -> UserCreated:
        """Add a user; without a password one is generated and returned in this answer only."""
        made = await accounts.create_user(
            security.db,
            name=body.name,
            role=body.role,
            password=body.password,
            passwords=security.passwords,
            now=security.now(),
        )
        logger.info(
            "%s added user %s (%s)",
            principal.name,
            body.name,
            body.role,
            extra={"action": "user_added", "by": principal.log_context(), "user": body.name},
        )
        return UserCreated(**_user_out(made.user).model_dump(), password=made.generated_password)

    @router.patch(
        "/users/{name}",
        response_model=UserOut,
        tags=["users"],
        responses={404: {}, 409: {}, 422: {}},
    )
    async def update_user(name: str, body: UserUpdate, principal: Principal = admin) -> UserOut:
        """Change a user's role, disable or enable it, or set its password (ends its sessions)."""
        try:
            if body.password is not None:  # refuse a bad password before changing anything
                accounts.check_new_password(body.password)
            user = await users_store.update_user(
                security.db,
                name,
                now=security.now(),
                role=None if body.role is None else body.role.value,
                disabled=body.disabled,
            )
            if body.password is not None:
                await accounts.set_password(
                    security.db,
                    name,
                    password=body.password,
                    passwords=security.passwords,
                    now=security.now(),
                )
        finally:
            security.forget_sessions()  # a role, a disable or a password: applies at once
        logger.info(
            "%s changed user %s",
            principal.name,
            name,
            extra={
                "action": "user_changed",
                "by": principal.log_context(),
                "user": name,
                "fields": sorted(body.model_dump(exclude_none=True)),
            },
        )
        return _user_out(user)

    @router.delete(
        "/users/{name}",
        status_code=status.HTTP_204_NO_CONTENT,
        tags=["users"],
        responses={404: {}, 409: {}},
    )
    async def remove_user(name: str, principal: Principal = admin) -> None:
        """Remove a user with its sessions and tokens (never the last enabled admin)."""
        try:
            await users_store.remove_user(security.db, name)
        finally:
            security.forget_sessions()
        logger.info(
            "%s removed user %s",
            principal.name,
            name,
            extra={"action": "user_removed", "by": principal.log_context(), "user": name},
        )

    return router
