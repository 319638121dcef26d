"""The running checks and their saved states, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from tests.fixtures.database import ImportDocument
from watchkeeper import store
from watchkeeper.engine import CheckStatus, StateType
from watchkeeper.results import CheckState

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
