"""Worker key enrolment in the store, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import asyncssh
import pytest

from tests.fixtures.database import T0
from watchkeeper import store
from watchkeeper.transport import keys
from watchkeeper.transport.registry import StoreKeyRegistry


def _key() -> tuple[str, str]:
    key = asyncssh.generate_private_key("ssh-ed25519")
    return keys.canonical_public_key(key), keys.fingerprint(key)


async def _add(db: store.Database, name: str, public_key: str, fp: str) -> store.WorkerKey:
    return await store.add_worker_key(
        db,
        name=name,
        public_key=public_key,
        fingerprint=fp,
        zones=["dmz", "core"],
        labels={"role": "edge"},
        now=T0,
    )


async def test_enrol_find_list_and_revoke(db: store.Database) -> None:
    public, fp = _key()
    added = await _add(db, "w1", public, fp)
    assert added.zones == ("dmz", "core") and added.labels == {"role": "edge"}
    async with db.session() as session:
        found = await store.find_by_public_key(session, public)
        assert found == added and found.created_at == T0
        assert await store.find_by_public_key(session, _key()[0]) is None
    revoked = await store.revoke_worker_key(db, "w1", now=T0 + timedelta(hours=1))
    assert revoked is not None and revoked.revoked_at == T0 + timedelta(hours=1)
    again = await store.revoke_worker_key(db, "w1", now=T0 + timedelta(hours=2))
    assert again is not None and again.revoked_at == revoked.revoked_at
    assert await store.revoke_worker_key(db, "nobody", now=T0) is None
    async with db.session() as session:
        assert [k.name for k in await store.list_worker_keys(session)] == ["w1"]
        assert await store.list_worker_keys(session, include_revoked=False) == []


async def test_names_and_keys_are_unique_even_after_revocation(db: store.Database) -> None:
    public, fp = _key()
    await _add(db, "w1", public, fp)
    with pytest.raises(store.WorkerKeyConflict, match="name is already enrolled"):
        await _add(db, "w1", *_key())
    with pytest.raises(store.WorkerKeyConflict, match="public key is already enrolled as 'w1'"):
        await _add(db, "w2", public, fp)
    await store.revoke_worker_key(db, "w1", now=T0)
    with pytest.raises(store.WorkerKeyConflict, match="revoked"):
        await _add(db, "w3", public, fp)


async def test_the_store_registry_grants_enrolled_zones_until_revoked(db: store.Database) -> None:
    public, fp = _key()
    await _add(db, "w1", public, fp)
    registry = StoreKeyRegistry(db)
    enrolment = await registry.lookup(public)
    assert enrolment is not None
    assert enrolment.name == "w1" and enrolment.zones == frozenset({"dmz", "core"})
    await store.revoke_worker_key(db, "w1", now=T0)
    assert await registry.lookup(public) is None
