"""``watchkeeper user add|list|passwd|remove`` and ``user token add|list|revoke``.

Accounts of the web interface and API, managed on the manager's machine: this is also the
way back in when every admin password is lost. A secret (a generated password, a new
token) is printed once, alone on standard output so a script can capture it; what it is
goes to standard error. Passwords are read from standard input, never from the command line
where ``ps`` and shell history would keep them.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from watchkeeper.commands.common import database, database_exists, emit_json
from watchkeeper.commands.exits import EXIT_OK
from watchkeeper.errors import UsageError
from watchkeeper.store import users as users_store
from watchkeeper.store.db import Database
from watchkeeper.web.security import accounts
from watchkeeper.web.security.passwords import Passwords
from watchkeeper.web.security.roles import Role


def _read_password(args: argparse.Namespace) -> str | None:
    """The password on stdin's first line with ``--password-stdin``, else None (generate)."""
    if not args.password_stdin:
        return None
    line = sys.stdin.readline()
    password = line.removesuffix("\n").removesuffix("\r")
    if not password:
        raise UsageError("--password-stdin: standard input holds no password")
    return password


async def _open(args: argparse.Namespace) -> Database:
    db = database(args)
    try:
        await db.migrate()
    except BaseException:
        await db.aclose()
        raise
    return db


async def user_add(args: argparse.Namespace) -> int:
    password = _read_password(args)
    db = await _open(args)
    try:
        made = await accounts.create_user(
            db, name=args.name, role=Role(args.role), password=password, passwords=Passwords()
        )
    except accounts.InvalidAccountInput as exc:
        where = "--password-stdin" if "password" in exc.message else "NAME"
        raise UsageError(f"{where}: {exc.message}") from exc
    except users_store.UserConflict as exc:
        raise UsageError(f"NAME: {exc.message}") from exc
    finally:
        await db.aclose()
    if args.format == "json":
        emit_json({**made.user.as_dict(), "password": made.generated_password})
        return EXIT_OK
    print(f"added user {made.user.name} ({made.user.role})", file=sys.stderr)
    if made.generated_password is not None:
        print("its password, shown this once:", file=sys.stderr)
        print(made.generated_password)
    return EXIT_OK


async def user_list(args: argparse.Namespace) -> int:
    found: list[users_store.User] = []
    if database_exists(args):
        db = await _open(args)
        try:
            async with db.session() as session:
                found = await users_store.list_users(session)
        finally:
            await db.aclose()
    if args.format == "json":
        emit_json([u.as_dict() for u in found])
        return EXIT_OK
    if not found:
        print("no users: `watchkeeper user add NAME --role admin` makes one", file=sys.stderr)
    for user in found:
        state = "disabled" if user.disabled else "enabled"
        last = f"{user.last_login_at:%Y-%m-%d %H:%M}" if user.last_login_at else "never"
        print(f"{user.name}  {user.role}  {state}  last login {last}")
    return EXIT_OK


async def user_passwd(args: argparse.Namespace) -> int:
    password = _read_password(args)
    db = await _open(args)
    try:
        generated = await accounts.set_password(
            db, args.name, password=password, passwords=Passwords()
        )
    except accounts.InvalidAccountInput as exc:
        raise UsageError(f"--password-stdin: {exc.message}") from exc
    except users_store.UserNotFound as exc:
        raise UsageError(f"NAME: {exc.message}") from exc
    finally:
        await db.aclose()
    print(f"set a new password for {args.name}; its sessions have ended", file=sys.stderr)
    if generated is not None:
        print("the password, shown this once:", file=sys.stderr)
        print(generated)
    return EXIT_OK


async def user_remove(args: argparse.Namespace) -> int:
    db = await _open(args)
    try:
        removed = await users_store.remove_user(db, args.name)
    except (users_store.UserNotFound, users_store.LastAdmin) as exc:
        raise UsageError(f"NAME: {exc.message}") from exc
    finally:
        await db.aclose()
    print(f"removed user {removed.name} with its sessions and API tokens")
    return EXIT_OK


async def token_add(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    try:
        expires_at = accounts.parse_expiry(args.expires, now=now)
    except accounts.InvalidAccountInput as exc:
        raise UsageError(f"--expires: {exc.message}") from exc
    db = await _open(args)
    try:
        made = await accounts.create_token(
            db,
            owner=args.name,
            name=args.token_name,
            role=None if args.role is None else Role(args.role),
            expires_at=expires_at,
            now=now,
        )
    except accounts.InvalidAccountInput as exc:
        where = "--token-name" if "token name" in exc.message else "NAME"
        raise UsageError(f"{where}: {exc.message}") from exc
    except accounts.RoleTooHigh as exc:
        raise UsageError(f"--role: {exc.message}") from exc
    except users_store.UserNotFound as exc:
        raise UsageError(f"NAME: {exc.message}") from exc
    finally:
        await db.aclose()
    if args.format == "json":
        emit_json({**made.token.as_dict(), "token": made.secret})
        return EXIT_OK
    token = made.token
    until = f"until {token.expires_at:%Y-%m-%d %H:%M} UTC" if token.expires_at else "no expiry"
    print(
        f"API token {token.id} ({token.name}) for {token.owner}, role {token.role}, {until}; "
        "send it as Authorization: Bearer <token>. Shown this once:",
        file=sys.stderr,
    )
    print(made.secret)
    return EXIT_OK


async def token_list(args: argparse.Namespace) -> int:
    found: list[users_store.ApiToken] = []
    if database_exists(args):
        db = await _open(args)
        try:
            async with db.session() as session:
                found = await users_store.list_tokens(session, owner=args.name)
        finally:
            await db.aclose()
    if args.format == "json":
        emit_json([t.as_dict() for t in found])
        return EXIT_OK
    if not found:
        print("no API tokens", file=sys.stderr)
    now = datetime.now(UTC)
    for token in found:
        if token.revoked_at is not None:
            state = f"revoked {token.revoked_at:%Y-%m-%d %H:%M}"
        elif not token.usable(now):
            state = "expired"
        elif token.expires_at is not None:
            state = f"until {token.expires_at:%Y-%m-%d %H:%M}"
        else:
            state = "active"
        used = f"{token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else "never"
        print(
            f"{token.id}  {token.prefix}...  {token.name}  owner={token.owner}  "
            f"role={token.role}  {state}  last used {used}"
        )
    return EXIT_OK


async def token_revoke(args: argparse.Namespace) -> int:
    db = await _open(args)
    try:
        revoked = await users_store.revoke_token(db, args.id, now=datetime.now(UTC))
    finally:
        await db.aclose()
    if revoked is None:
        raise UsageError(f"ID: no API token {args.id}")
    print(f"revoked API token {revoked.id} ({revoked.name}) of {revoked.owner}")
    return EXIT_OK
