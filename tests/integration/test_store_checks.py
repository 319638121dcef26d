"""The running checks, their saved states and the state history, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from tests.fixtures.database import ImportDocument
from watchkeeper import store
from watchkeeper.engine import (
    CheckStatus,
    HostState,
    HostStateChange,
    StateChange,
    StateType,
)
from watchkeeper.errors import StoreError
from watchkeeper.results import CheckState
from watchkeeper.store.db import MIGRATIONS_DIR
from watchkeeper.store.tables import UTCDateTime

T = 1_764_000_000.0


def _doc(services: list[str]) -> dict[str, Any]:
    return {
        "schema": "watchkeeper/v1",
        "zones": [{"name": "core"}],
        "hosts": [{"name": "h1", "address": "127.0.0.1", "zone": "core"}],
        "services": [
            {"name": name, "hosts": ["h1"], "check": {"kind": "tcp", "port": 22}}
            for name in services
        ],
    }


async def test_list_checks_and_upsert_states(
    db: store.Database, import_document: ImportDocument
) -> None:
    await import_document(_doc(["a", "b"]))
    async with db.session() as session:
        checks = await store.list_checks(session)
        assert [c.key for c in checks] == ["h1!a", "h1!b"]
        assert checks[0].zone == "core" and checks[0].spec["check"]["port"] == 22
        assert await store.list_check_states(session) == {}

    pending = CheckStatus.initial("h1!a", T)
    critical = CheckStatus(
        key="h1!b",
        state=CheckState.CRITICAL,
        state_type=StateType.SOFT,
        attempt=2,
        output="TCP CRITICAL - refused",
        pending=False,
        last_check=T + 5,
        last_state_change=T + 1,
        last_hard_change=T,
    )
    gone = CheckStatus.initial("h1!gone", T)  # not a running check: skipped, no FK error
    assert await store.save_check_states(db, [pending, critical, gone]) == 2
    ok = critical.evolve(state=CheckState.OK, state_type=StateType.HARD, attempt=1, output="ok")
    assert await store.save_check_states(db, [ok]) == 1  # an update, not a second row

    async with db.session() as session:
        saved = await store.list_check_states(session)
    assert set(saved) == {"h1!a", "h1!b"}
    assert saved["h1!a"].pending and saved["h1!a"].last_check is None
    b = saved["h1!b"]
    assert (b.state, b.state_type, b.attempt, b.output) == (
        CheckState.OK,
        StateType.HARD,
        1,
        "ok",
    )
    assert b.last_check == T + 5 and b.last_state_change == T + 1

    await import_document(_doc(["a"]))  # removing a check drops its state (cascade)
    async with db.session() as session:
        assert set(await store.list_check_states(session)) == {"h1!a"}


def _change(
    key: str,
    at: float,
    to: CheckState,
    *,
    previous: CheckState | None = CheckState.OK,
    state_type: StateType = StateType.SOFT,
    attempt: int = 1,
    hard: bool = False,
) -> StateChange:
    return StateChange(
        key=key,
        at=at,
        from_state=previous,
        from_type=None if previous is None else StateType.HARD,
        to_state=to,
        to_type=state_type,
        attempt=attempt,
        hard=hard,
        output=f"{key} is {to.name}",
    )


def _when(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


async def _history(db: store.Database, **filters: Any) -> list[store.StateHistoryEntry]:
    async with db.session() as session:
        return await store.list_state_history(session, **filters)


async def test_every_status_field_survives_a_round_trip(
    db: store.Database, import_document: ImportDocument
) -> None:
    await import_document(_doc(["a", "b", "c"]))
    statuses = [
        CheckStatus.initial("h1!a", T),  # pending
        CheckStatus(  # a soft problem after a hard WARNING that recovered: nothing default
            key="h1!b",
            state=CheckState.CRITICAL,
            state_type=StateType.SOFT,
            attempt=2,
            output="TCP CRITICAL - refused",
            pending=False,
            stale=True,
            not_run="no worker for zone dmz",
            host_problem=True,
            last_check=T + 30.25,
            last_state_change=T + 20.5,
            last_hard_state=CheckState.WARNING,
            last_hard_change=T + 10.125,
        ),
        CheckStatus(
            key="h1!c",
            state=CheckState.UNKNOWN,
            state_type=StateType.HARD,
            attempt=3,
            output="",
            pending=False,
            last_check=T + 3,
            last_state_change=T + 1,
            last_hard_state=CheckState.UNKNOWN,
            last_hard_change=T + 2,
        ),
    ]
    assert await store.save_check_states(db, statuses) == 3
    async with db.session() as session:
        assert await store.list_check_states(session) == {s.key: s for s in statuses}


async def test_statuses_and_history_are_written_together(
    db: store.Database, import_document: ImportDocument
) -> None:
    await import_document(_doc(["a"]))
    status = CheckStatus.initial("h1!a", T).evolve(
        state=CheckState.CRITICAL, state_type=StateType.SOFT, pending=False, last_check=T + 1
    )
    first = _change("h1!a", T + 1, CheckState.CRITICAL, previous=None)
    assert await store.save_check_states(db, [status], [first]) == 1
    # History alone is written too (a status may have been saved by an earlier batch).
    assert await store.save_check_states(db, [], [_change("h1!a", T + 2, CheckState.OK)]) == 0

    [latest, entry] = await _history(db)
    assert latest.state == "OK" and latest.id > entry.id
    assert entry == store.StateHistoryEntry(
        id=entry.id,
        check_key="h1!a",
        kind=store.HistoryKind.CHECK,
        at=_when(T + 1),
        state="CRITICAL",
        state_type=StateType.SOFT,
        attempt=1,
        output="h1!a is CRITICAL",
        previous_state=None,
        hard_change=False,
    )


async def test_a_flush_of_any_size_compiles_nothing(
    db: store.Database, import_document: ImportDocument
) -> None:
    """At saturation every flush has another number of statuses. A statement compiled per
    flush (SQLAlchemy caches no ``ON CONFLICT`` upsert, and a multi-row ``VALUES`` differs
    with each count) is work per flush that grows with the batch, on top of the rows."""
    await import_document(_doc([f"s{i}" for i in range(120)]))
    keys = [f"h1!s{i}" for i in range(120)]

    def statuses(count: int, at: float) -> list[CheckStatus]:
        return [
            CheckStatus.initial(key, T).evolve(pending=False, last_check=at) for key in keys[:count]
        ]

    await store.save_check_states(db, statuses(3, T + 1))  # the first flush may compile
    compiled: list[str] = []
    upserts: dict[int, set[str]] = {}
    count = 0

    def executed(conn: Any, cursor: Any, sql: str, params: Any, context: Any, many: Any) -> None:
        if context.compiled is not None and context.cache_hit.name != "CACHE_HIT":
            compiled.append(sql)
        if sql.startswith("INSERT INTO check_states"):
            upserts.setdefault(count, set()).add(sql)

    sa.event.listen(db.engine.sync_engine, "after_cursor_execute", executed)
    try:
        for n, count in enumerate((1, 7, 120, 64, 2, 119)):
            assert await store.save_check_states(db, statuses(count, T + 2 + n)) == count
    finally:
        sa.event.remove(db.engine.sync_engine, "after_cursor_execute", executed)
    assert compiled == []
    # The same SQL text for any count (PostgreSQL has a second way for large flushes).
    assert upserts[1] == upserts[7] == upserts[64] == upserts[2]
    assert upserts[120] == upserts[119]
    async with db.session() as session:
        saved = await store.list_check_states(session)
    assert saved["h1!s0"].last_check == T + 7 and saved["h1!s119"].last_check == T + 4
    assert saved["h1!s100"].last_check == T + 7
    assert saved["h1!s0"] == statuses(1, T + 7)[0]


async def test_a_failed_batch_writes_neither(
    db: store.Database, import_document: ImportDocument
) -> None:
    await import_document(_doc(["a"]))
    status = CheckStatus.initial("h1!a", T).evolve(state=CheckState.CRITICAL, pending=False)
    broken = dataclasses.replace(_change("h1!a", T, CheckState.CRITICAL), output=None)
    with pytest.raises(StoreError):  # history output is NOT NULL: fails after the upsert
        await store.save_check_states(db, [status], [broken])
    async with db.session() as session:
        assert await store.list_check_states(session) == {}
    assert await _history(db) == []


async def test_host_entries_are_kept_under_the_host_check_key(db: store.Database) -> None:
    down = HostStateChange(
        host="h1",
        at=T,
        from_state=HostState.UP,
        from_type=StateType.HARD,
        to_state=HostState.DOWN,
        to_type=StateType.HARD,
        hard=True,
        output="PING CRITICAL",
    )
    check = _change("h1", T, CheckState.CRITICAL, state_type=StateType.HARD, hard=True)
    await store.save_check_states(db, [], [check, down])

    [host, own] = await _history(db, check_key="h1")
    assert (own.kind, own.state, own.attempt) == (store.HistoryKind.CHECK, "CRITICAL", 1)
    assert (host.kind, host.state, host.previous_state) == (store.HistoryKind.HOST, "DOWN", "UP")
    assert host.attempt is None and host.hard_change and host.state_type is StateType.HARD
    assert await _history(db, kind=store.HistoryKind.HOST) == [host]


async def test_history_reads_newest_first_with_filters_and_pages(db: store.Database) -> None:
    states = [CheckState.CRITICAL, CheckState.OK] * 3
    changes = [
        _change(key, T + i, state)
        for i, state in enumerate(states)
        for key in ("h1!a", "h1!b")  # both at each second: a, then b
    ]
    await store.save_check_states(db, [], changes[:5])  # two batches: ids keep the order
    await store.save_check_states(db, [], changes[5:])

    everything = await _history(db)
    assert [(e.check_key, e.at) for e in everything] == [
        (c.key, _when(c.at)) for c in reversed(changes)
    ]
    ids = [e.id for e in everything]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)

    a = await _history(db, check_key="h1!a")
    assert [e.at for e in a] == [_when(T + i) for i in reversed(range(6))]
    assert [e.state for e in a[:2]] == ["OK", "CRITICAL"]

    window = await _history(db, since=_when(T + 2), until=_when(T + 4))  # [since, until)
    assert [(e.check_key, e.at) for e in window] == [
        ("h1!b", _when(T + 3)),
        ("h1!a", _when(T + 3)),
        ("h1!b", _when(T + 2)),
        ("h1!a", _when(T + 2)),
    ]

    sizes, paged = [], []
    before: int | None = None
    while page := await _history(db, check_key="h1!b", limit=4, before_id=before):
        sizes.append(len(page))
        paged.extend(page)
        before = page[-1].id
    assert sizes == [4, 2]
    assert paged == await _history(db, check_key="h1!b")

    with pytest.raises(ValueError, match="limit"):
        await _history(db, limit=0)


async def test_history_outlives_its_check(
    db: store.Database, import_document: ImportDocument
) -> None:
    await import_document(_doc(["a", "b"]))
    gone = CheckStatus.initial("h1!b", T).evolve(state=CheckState.CRITICAL, pending=False)
    await store.save_check_states(db, [gone], [_change("h1!b", T, CheckState.CRITICAL)])

    await import_document(_doc(["a"]))  # the state cascades away, the history stays
    async with db.session() as session:
        assert set(await store.list_check_states(session)) == set()
    [entry] = await _history(db, check_key="h1!b")
    assert entry.state == "CRITICAL"

    # A batch that still holds the removed check's status writes its history only.
    later = _change("h1!b", T + 1, CheckState.OK, previous=CheckState.CRITICAL)
    assert await store.save_check_states(db, [gone], [later]) == 0
    assert len(await _history(db, check_key="h1!b")) == 2


async def test_prune_deletes_only_older_entries_in_batches(db: store.Database) -> None:
    changes = [_change("h1!a", T + i, CheckState.CRITICAL) for i in range(7)]
    await store.save_check_states(db, [], changes)

    deleted = await store.prune_state_history(db, older_than=_when(T + 5), batch=2)
    assert deleted == 5  # three batches: 2, 2, 1
    assert [e.at for e in await _history(db)] == [_when(T + 6), _when(T + 5)]
    assert await store.prune_state_history(db, older_than=_when(T)) == 0


def _alembic(connection: sa.Connection, action: str, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    getattr(command, action)(config, revision)


async def _migrate(db: store.Database, action: str, revision: str) -> None:
    async with db.begin() as session:
        connection = await session.connection()
        await connection.run_sync(_alembic, action, revision)


async def test_rows_saved_before_0003_are_rebuilt(
    db: store.Database, import_document: ImportDocument
) -> None:
    await import_document(_doc(["a", "b", "c"]))
    await _migrate(db, "downgrade", "0002")
    old = sa.text(
        "INSERT INTO check_states (check_key, state, hard, attempt, output, last_check, "
        "last_change) VALUES (:key, :state, :hard, :attempt, :output, :at, :at)"
    ).bindparams(sa.bindparam("at", type_=UTCDateTime()))
    rows = [
        {"key": "h1!a", "state": "PENDING", "hard": True, "attempt": 1, "output": None},
        {"key": "h1!b", "state": "CRITICAL", "hard": False, "attempt": 2, "output": "no"},
        {"key": "h1!c", "state": "WARNING", "hard": True, "attempt": 3, "output": "hm"},
    ]
    async with db.begin() as session:
        await session.execute(old, [{**row, "at": _when(T + 1)} for row in rows])
    await _migrate(db, "upgrade", "head")

    async with db.session() as session:
        saved = await store.list_check_states(session)
    assert saved["h1!a"].pending and saved["h1!a"].state_type is StateType.HARD
    assert saved["h1!a"].last_hard_state is CheckState.OK
    b, c = saved["h1!b"], saved["h1!c"]
    assert (b.state, b.state_type, b.attempt, b.last_hard_state) == (
        CheckState.CRITICAL,
        StateType.SOFT,
        2,
        CheckState.OK,  # a soft problem only ever follows OK
    )
    assert (c.state, c.state_type, c.last_hard_state) == (
        CheckState.WARNING,
        StateType.HARD,
        CheckState.WARNING,
    )
    assert not (b.pending or b.stale or b.host_problem)
    assert b.last_hard_change == b.last_state_change == T + 1
    assert await _history(db) == []
