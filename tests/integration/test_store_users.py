"""Users, sessions and API tokens in the store, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from watchkeeper import store
from watchkeeper.store import users as users_store
from watchkeeper.web.security import accounts
from watchkeeper.web.security.passwords import Passwords

T = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
#: Cheap hashing for tests; production uses the library's defaults.
FAST = Passwords(time_cost=1, memory_cost=8, parallelism=1)


async def _user(db: store.Database, name: str, role: str = "viewer") -> users_store.User:
    made = await users_store.add_user(db, name=name, password_hash=f"h-{name}", role=role, now=T)
    assert made is not None
    return made


async def test_users_add_list_get_and_conflict(db: store.Database) -> None:
    await _user(db, "bob", "operator")
    await _user(db, "alice", "admin")
    with pytest.raises(users_store.UserConflict, match="'bob' already exists"):
        await _user(db, "bob")
    async with db.session() as session:
        assert [u.name for u in await users_store.list_users(session)] == ["alice", "bob"]
        assert await users_store.count_users(session) == 2
        bob = await users_store.get_user(session, "bob")
        creds = await users_store.get_credentials(session, "bob")
        assert await users_store.get_user(session, "nobody") is None
    assert bob is not None and bob.role == "operator" and not bob.disabled
    assert bob.created_at == T and bob.last_login_at is None
    assert creds is not None and creds.password_hash == "h-bob"
    assert "h-bob" not in repr(creds) and "password" not in str(bob.as_dict()).replace(
        "password_changed_at", ""
    )


async def test_the_first_admin_is_made_once(db: store.Database) -> None:
    password = await accounts.ensure_first_admin(db, passwords=FAST, now=T)
    assert password is not None and len(password) >= 20
    assert await accounts.ensure_first_admin(db, passwords=FAST, now=T) is None
    async with db.session() as session:
        [admin] = await users_store.list_users(session)
        creds = await users_store.get_credentials(session, "admin")
    assert admin.name == "admin" and admin.role == "admin"
    assert creds is not None and FAST.verify(creds.password_hash, password)


async def test_first_admin_is_not_made_when_any_user_exists(db: store.Database) -> None:
    await _user(db, "viewer1")
    assert await accounts.ensure_first_admin(db, passwords=FAST) is None
    made = await users_store.add_user(
        db, name="admin", password_hash="x", role="admin", now=T, only_if_none=True
    )
    assert made is None


async def test_the_last_enabled_admin_cannot_go(db: store.Database) -> None:
    await _user(db, "root", "admin")
    await _user(db, "bob")
    with pytest.raises(users_store.LastAdmin, match="last enabled admin"):
        await users_store.update_user(db, "root", role="operator", now=T)
    with pytest.raises(users_store.LastAdmin):
        await users_store.update_user(db, "root", disabled=True, now=T)
    with pytest.raises(users_store.LastAdmin):
        await users_store.remove_user(db, "root")
    await users_store.update_user(db, "bob", role="admin", now=T)
    demoted = await users_store.update_user(db, "root", role="viewer", now=T)
    assert demoted.role == "viewer"
    with pytest.raises(users_store.UserNotFound):
        await users_store.update_user(db, "ghost", role="viewer", now=T)
    with pytest.raises(users_store.UserNotFound):
        await users_store.remove_user(db, "ghost")


async def test_sessions_live_with_their_user(db: store.Database) -> None:
    await _user(db, "bob", "operator")
    await users_store.create_session(
        db,
        id_hash="a" * 64,
        user_name="bob",
        csrf_token="c1",
        now=T,
        expires_at=T + timedelta(hours=1),
        address="127.0.0.1",
    )
    async with db.session() as session:
        found = await users_store.get_session(session, "a" * 64)
    assert found is not None and found.role == "operator" and found.csrf_token == "c1"
    assert found.expires_at == T + timedelta(hours=1) and found.address == "127.0.0.1"

    # a new session replaces the browser's old one (session fixation)
    await users_store.create_session(
        db,
        id_hash="b" * 64,
        user_name="bob",
        csrf_token="c2",
        now=T,
        expires_at=T + timedelta(hours=1),
        address=None,
        replaces="a" * 64,
    )
    await users_store.touch_session(db, "b" * 64, now=T + timedelta(minutes=5))
    async with db.session() as session:
        assert await users_store.get_session(session, "a" * 64) is None
        b = await users_store.get_session(session, "b" * 64)
    assert b is not None and b.last_seen_at == T + timedelta(minutes=5)

    # a role change applies to the open session; a new password ends it
    await users_store.update_user(db, "bob", role="viewer", now=T)
    async with db.session() as session:
        b = await users_store.get_session(session, "b" * 64)
    assert b is not None and b.role == "viewer"
    await users_store.update_user(db, "bob", password_hash="new", now=T + timedelta(minutes=6))
    async with db.session() as session:
        assert await users_store.count_sessions(session, "bob") == 0
        creds = await users_store.get_credentials(session, "bob")
    assert creds is not None and creds.password_hash == "new"
    assert creds.user.password_changed_at == T + timedelta(minutes=6)


async def test_prune_and_delete_sessions(db: store.Database) -> None:
    await _user(db, "bob")
    for n, (seen, ends) in enumerate([(0, 60), (50, 60), (0, 5)]):
        await users_store.create_session(
            db,
            id_hash=str(n) * 64,
            user_name="bob",
            csrf_token="c",
            now=T + timedelta(minutes=seen),
            expires_at=T + timedelta(minutes=ends),
            address=None,
        )
    now = T + timedelta(minutes=55)
    # idle since minute 30: session 0 (last seen 0) and 2 (ended at 5) go, 1 stays
    removed = await users_store.prune_sessions(db, now=now, idle_since=now - timedelta(minutes=25))
    assert removed == 2
    assert await users_store.delete_session(db, "1" * 64)
    assert not await users_store.delete_session(db, "1" * 64)


async def test_tokens_add_find_touch_revoke(db: store.Database) -> None:
    await _user(db, "bob", "operator")
    await _user(db, "carol")
    made = await users_store.add_token(
        db,
        owner="bob",
        name="grafana",
        token_hash="f" * 64,
        prefix="wk_abcdef",
        role="viewer",
        now=T,
        expires_at=T + timedelta(days=30),
    )
    other = await users_store.add_token(
        db, owner="carol", name="x", token_hash="e" * 64, prefix="wk_x", role="viewer", now=T,
        expires_at=None,
    )  # fmt: skip
    assert other.id > made.id
    with pytest.raises(users_store.UserNotFound):
        await users_store.add_token(
            db, owner="ghost", name="x", token_hash="d" * 64, prefix="p", role="viewer", now=T,
            expires_at=None,
        )  # fmt: skip

    async with db.session() as session:
        match = await users_store.find_token(session, "f" * 64)
        assert await users_store.find_token(session, "0" * 64) is None
        mine = await users_store.list_tokens(session, owner="bob")
        everyone = await users_store.list_tokens(session)
    assert match is not None and match.token == made and match.owner_role == "operator"
    assert made.usable(T) and not made.usable(T + timedelta(days=30))
    assert [t.name for t in mine] == ["grafana"] and len(everyone) == 2

    await users_store.touch_token(db, made.id, now=T + timedelta(hours=1))
    # carol may not revoke bob's token; bob may, once
    assert await users_store.revoke_token(db, made.id, now=T, owner="carol") is None
    revoked = await users_store.revoke_token(db, made.id, now=T + timedelta(hours=2), owner="bob")
    again = await users_store.revoke_token(db, made.id, now=T + timedelta(hours=3))
    assert revoked is not None and again is not None
    assert again.revoked_at == T + timedelta(hours=2)
    assert again.last_used_at == T + timedelta(hours=1)
    assert not again.usable(T)
    async with db.session() as session:
        assert await users_store.list_tokens(session, owner="bob", include_revoked=False) == []
        assert await users_store.get_token(session, made.id) == again


async def test_removing_a_user_removes_its_sessions_and_tokens(db: store.Database) -> None:
    await _user(db, "root", "admin")
    await _user(db, "bob")
    await users_store.create_session(
        db, id_hash="a" * 64, user_name="bob", csrf_token="c", now=T,
        expires_at=T + timedelta(hours=1), address=None,
    )  # fmt: skip
    await users_store.add_token(
        db, owner="bob", name="t", token_hash="f" * 64, prefix="p", role="viewer", now=T,
        expires_at=None,
    )  # fmt: skip
    removed = await users_store.remove_user(db, "bob")
    assert removed.name == "bob"
    async with db.session() as session:
        assert await users_store.get_session(session, "a" * 64) is None
        assert await users_store.find_token(session, "f" * 64) is None
        assert await users_store.list_tokens(session) == []


async def test_create_token_keeps_the_role_at_most_the_owners(db: store.Database) -> None:
    await _user(db, "bob", "operator")
    with pytest.raises(accounts.RoleTooHigh, match="at most the operator role"):
        await accounts.create_token(
            db, owner="bob", name="x", role=accounts.Role.ADMIN, expires_at=None, now=T
        )
    made = await accounts.create_token(db, owner="bob", name="ci", role=None, expires_at=None)
    assert made.token.role == "operator" and made.secret.startswith("wk_")
    assert made.token.prefix == made.secret[:9]
    await users_store.update_user(db, "bob", disabled=True, now=T)
    with pytest.raises(accounts.InvalidAccountInput, match="disabled"):
        await accounts.create_token(db, owner="bob", name="y", role=None, expires_at=None)
    with pytest.raises(accounts.InvalidAccountInput, match="not a token name"):
        await accounts.create_token(db, owner="bob", name="a b", role=None, expires_at=None)
