"""Importing configurations into the store, on SQLite and PostgreSQL (see tests/fixtures)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from tests.fixtures.database import T0, ImportDocument
from watchkeeper import store
from watchkeeper.document.normalize import Hashes, Snapshot, snapshot
from watchkeeper.document.validate import validate
from watchkeeper.errors import ImportFailed
from watchkeeper.store import bulk, tables


def document(hosts: tuple[str, ...] = ("web1", "web2", "db1"), disk: str = "20%") -> dict[str, Any]:
    """Hosts with a ping check each, ``http`` on the web hosts, ``disk`` on all of them."""
    return {
        "schema": "watchkeeper/v1",
        "zones": [{"name": "core"}, {"name": "dmz"}],
        "hosts": [
            {
                "name": name,
                "address": f"{name}.example.net",
                "zone": "core" if name.startswith("db") else "dmz",
                "labels": {"role": "db" if name.startswith("db") else "web"},
                "check": {"check": {"kind": "ping"}},
            }
            for name in hosts
        ],
        "services": [
            {
                "name": "http",
                "hosts": {"labels": {"role": "web"}},
                "check": {"kind": "http", "port": 80, "path": "/health"},
            },
            {
                "name": "disk",
                "hosts": list(hosts),
                "check": {"kind": "plugin", "command": ["check_disk", "-w", disk, "-p", "/"]},
            },
        ],
    }


def flat(raw: dict[str, Any]) -> Snapshot:
    validated = validate(raw)
    assert validated.document is not None
    return snapshot(validated.document)


def hashes_of(raw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The document's hashes in the shape `running` gives (kinds without objects left out)."""
    return running(flat(raw).hashes())


def running(hashes: Hashes) -> tuple[dict[str, Any], dict[str, str]]:
    return {k: dict(v) for k, v in hashes.objects.items() if v}, dict(hashes.checks)


async def running_hashes(db: store.Database) -> tuple[dict[str, Any], dict[str, str]]:
    async with db.session() as session:
        return running(await store.running_hashes(session))


async def check_versions(db: store.Database) -> dict[str, int]:
    async with db.session() as session:
        rows = await session.execute(sa.select(tables.checks.c.key, tables.checks.c.version_id))
        return dict(rows.tuples().all())


async def object_versions(db: store.Database, kind: str) -> dict[str, int]:
    o = tables.config_objects.c
    async with db.session() as session:
        rows = await session.execute(sa.select(o.name, o.version_id).where(o.kind == kind))
        return dict(rows.tuples().all())


async def set_states(db: store.Database, keys: list[str]) -> None:
    async with db.begin() as session:
        await session.execute(
            sa.insert(tables.check_states),
            [
                {"check_key": k, "state": "CRITICAL", "hard": True, "attempt": 3, "output": k}
                for k in keys
            ],
        )


async def states(db: store.Database) -> dict[str, tuple[str, bool, int, str | None]]:
    s = tables.check_states.c
    async with db.session() as session:
        rows = await session.execute(sa.select(s.check_key, s.state, s.hard, s.attempt, s.output))
        return {key: (state, hard, attempt, out) for key, state, hard, attempt, out in rows}


async def test_first_import_creates_version_1(
    db: store.Database, import_document: ImportDocument
) -> None:
    raw = document()
    outcome = await import_document(raw, source="file:///etc/wk.json")

    assert outcome.created
    assert outcome.version.id == 1
    assert outcome.version.created_at == T0
    assert outcome.version.source == "file:///etc/wk.json"
    assert outcome.version.summary == {
        "zones": {"added": 2, "changed": 0, "removed": 0},
        "hosts": {"added": 3, "changed": 0, "removed": 0},
        "services": {"added": 2, "changed": 0, "removed": 0},
        "checks": {"added": 8, "changed": 0, "removed": 0},
    }
    async with db.session() as session:
        assert await store.current_version(session) == outcome.version
        stored = await store.get_version(session, 1)
    assert await running_hashes(db) == hashes_of(raw)
    assert stored is not None and stored.document == raw
    assert stored.content_hash == validate(raw).content_hash
    assert set((await check_versions(db)).values()) == {1}


async def test_objects_of_a_section_are_listed_by_name_with_their_specs(
    db: store.Database, import_document: ImportDocument
) -> None:
    raw = document()
    await import_document(raw)
    await import_document(document(hosts=("web1", "db1")))
    async with db.session() as session:
        hosts = await store.list_objects(session, "hosts")
        nothing = await store.list_objects(session, "notifications")
    assert [h.name for h in hosts] == ["db1", "web1"]
    assert hosts[1].kind == "hosts" and hosts[1].spec["address"] == raw["hosts"][0]["address"]
    assert nothing == []


async def test_the_same_document_again_is_a_no_op(
    db: store.Database, import_document: ImportDocument
) -> None:
    first = await import_document(document())
    again = await import_document(dict(reversed(document().items())))  # same content hash

    assert not again.created
    assert again.version == first.version
    assert again.diff.empty and again.diff.summary() == {}
    async with db.session() as session:
        assert [v.id for v in await store.list_versions(session)] == [1]


async def test_a_changed_service_updates_only_its_checks(
    db: store.Database, import_document: ImportDocument
) -> None:
    await import_document(document())
    outcome = await import_document(document(disk="10%"))

    assert outcome.created and outcome.version.id == 2
    assert outcome.version.summary == {
        "services": {"added": 0, "changed": 1, "removed": 0},
        "checks": {"added": 0, "changed": 3, "removed": 0},
    }
    assert outcome.diff.objects["services"].changed == ["disk"]
    assert outcome.diff.checks.changed == ["db1!disk", "web1!disk", "web2!disk"]
    assert await check_versions(db) == {
        "web1": 1, "web2": 1, "db1": 1, "web1!http": 1, "web2!http": 1,
        "web1!disk": 2, "web2!disk": 2, "db1!disk": 2,
    }  # fmt: skip
    assert await object_versions(db, "services") == {"http": 1, "disk": 2}
    c = tables.checks.c
    async with db.session() as session:
        spec = await session.scalar(sa.select(c.spec).where(c.key == "db1!disk"))
    assert await running_hashes(db) == hashes_of(document(disk="10%"))
    assert spec is not None
    assert spec["check"]["command"] == ["check_disk", "-w", "10%", "-p", "/"]


async def test_removing_a_host_removes_its_checks_and_their_states(
    db: store.Database, import_document: ImportDocument
) -> None:
    await import_document(document())
    await set_states(db, list(await check_versions(db)))

    outcome = await import_document(document(hosts=("web1", "db1")))

    assert outcome.diff.objects["hosts"].removed == ["web2"]
    assert outcome.diff.checks.removed == ["web2", "web2!disk", "web2!http"]
    assert sorted(await check_versions(db)) == ["db1", "db1!disk", "web1", "web1!disk", "web1!http"]
    assert sorted(await states(db)) == ["db1", "db1!disk", "web1", "web1!disk", "web1!http"]


async def test_runtime_state_survives_an_import(
    db: store.Database, import_document: ImportDocument
) -> None:
    """Checks an import keeps (changed or not) keep their state; only removed ones lose it."""
    await import_document(document())
    await set_states(db, list(await check_versions(db)))
    before = await states(db)

    await import_document(document(hosts=("web1", "web2", "db1", "db2"), disk="5%"))

    assert await states(db) == before
    assert "db2!disk" in await check_versions(db)


@pytest.mark.parametrize("failing_step", ["version", "deleted", "updated", "inserted"])
async def test_a_failure_half_way_changes_nothing(
    db: store.Database, import_document: ImportDocument, failing_step: str
) -> None:
    first = (await import_document(document())).version
    await set_states(db, list(await check_versions(db)))
    before = (await check_versions(db), await states(db), await object_versions(db, "hosts"))
    boom = RuntimeError("disk on fire")

    async def fail(step: str) -> None:
        if step == failing_step:
            raise boom

    changed = document(hosts=("web1", "db1", "db2"), disk="1%")  # removes, changes and adds
    with pytest.raises(ImportFailed, match=r"rolled back.*disk on fire") as caught:
        await import_document(changed, _after_step=fail)

    assert caught.value.__cause__ is boom
    after = (await check_versions(db), await states(db), await object_versions(db, "hosts"))
    assert after == before
    assert await running_hashes(db) == hashes_of(document())
    async with db.session() as session:
        assert await store.current_version(session) == first
        assert [v.id for v in await store.list_versions(session)] == [1]
    retried = await import_document(changed)  # nothing left behind blocks a retry
    assert retried.created and sorted(await check_versions(db))[0] == "db1"


async def test_plan_reports_the_diff_and_writes_nothing(
    db: store.Database, import_document: ImportDocument
) -> None:
    await import_document(document())

    planned = await store.plan(db, flat(document(hosts=("web1", "db1"), disk="1%")))

    assert planned.summary() == {
        "hosts": {"added": 0, "changed": 0, "removed": 1},
        "services": {"added": 0, "changed": 1, "removed": 0},
        "checks": {"added": 0, "changed": 2, "removed": 3},
    }
    assert set((await check_versions(db)).values()) == {1}


async def test_bulk_writes_cross_chunk_and_batch_boundaries(
    db: store.Database, import_document: ImportDocument, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "CHUNK", 3)
    monkeypatch.setattr(bulk, "BATCH", 4)
    many = tuple(f"web{i}" for i in range(20))
    await import_document(document(hosts=many))

    outcome = await import_document(document(hosts=many[:7], disk="3%"))

    assert outcome.version.summary["checks"] == {"added": 0, "changed": 7, "removed": 39}
    assert await running_hashes(db) == hashes_of(document(many[:7], "3%"))


async def test_concurrent_imports_take_turns(
    db: store.Database, import_document: ImportDocument
) -> None:
    await import_document(document())
    a, b = document(hosts=("web1",)), document(hosts=("db1", "db2"), disk="2%")

    done = await asyncio.gather(import_document(a), import_document(b))

    assert sorted(o.version.id for o in done) == [2, 3]
    last = max(done, key=lambda o: o.version.id)
    assert await running_hashes(db) == hashes_of(a if last is done[0] else b)


async def test_import_after_another_process_imported_reads_the_tables_again(
    db: store.Database, database_url: str, import_document: ImportDocument
) -> None:
    """A second manager's import makes this process's remembered hashes stale."""
    await import_document(document())
    other = store.Database.from_url(database_url)
    try:
        raw = document(hosts=("web1",))
        validated = validate(raw)
        await store.import_snapshot(
            other,
            snapshot=flat(raw),
            content_hash=validated.content_hash,
            document_json="{}",
            source="other",
            warnings=[],
            now=T0,
        )
    finally:
        await other.aclose()

    outcome = await import_document(document())

    assert outcome.version.id == 3
    assert outcome.diff.checks.added == ["db1", "db1!disk", "web2", "web2!disk", "web2!http"]


async def test_old_versions_are_pruned_but_the_last_the_young_and_the_running_are_kept(
    db: store.Database, import_document: ImportDocument
) -> None:
    """Six versions a minute apart; the zones and hosts never change after version 1, the
    disk service changes every time."""
    for n in range(6):
        await import_document(document(disk=f"{20 + n}%"))
    minute = timedelta(minutes=1)

    async def ids() -> list[int]:
        async with db.session() as session:
            return [v.id for v in await store.list_versions(session)]

    running = set((await object_versions(db, "hosts")).values()) | set(
        (await check_versions(db)).values()
    )
    assert 1 in running and 6 in running  # hosts from version 1; disk checks from 6
    # Younger than the cutoff (versions 4, 5, 6 at T0 + 3..5 min) are kept whatever N says.
    assert await store.prune_versions(db, keep_last=1, older_than=T0 + 3 * minute) == 2
    assert sorted(await ids()) == [1, 4, 5, 6]  # 2 and 3 went; 1 is what the hosts run from
    # The last N are kept whatever their age; the current one always.
    assert await store.prune_versions(db, keep_last=2, older_than=T0 + 60 * minute) == 1
    assert sorted(await ids()) == [1, 5, 6]
    assert await store.prune_versions(db, keep_last=1, older_than=T0 + 60 * minute) == 1
    assert sorted(await ids()) == [1, 6]
    async with db.session() as session:
        current = await store.current_version(session)
    assert current is not None and current.id == 6
    with pytest.raises(ValueError, match="keep_last must be at least 1"):
        await store.prune_versions(db, keep_last=0, older_than=T0)
