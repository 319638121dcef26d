"""The running checks and their runtime state, for the engine's runner.

The engine keeps check state in memory and decides; this module is how that state outlives
the process. `list_checks` gives the engine its configuration at start, `list_check_states`
what the last run knew, and `save_check_states` writes the statuses a batch of results
changed, in one transaction per batch (one per result would cap throughput at the
database's commit rate).

Times are the engine's float seconds (epoch seconds: the runner feeds it ``time.time()``)
and become UTC timestamps here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from watchkeeper.document.normalize import CheckRecord
from watchkeeper.engine.statemachine import CheckStatus
from watchkeeper.engine.states import StateType
from watchkeeper.results import CheckState
from watchkeeper.store import bulk, tables
from watchkeeper.store.db import Database

#: What ``check_states.state`` holds for a check that has no result yet.
PENDING = "PENDING"
#: Rows per multi-row upsert: 7 parameters each stays below SQLite's variable limit.
ROWS_PER_STATEMENT = 1000


async def list_checks(session: AsyncSession) -> list[CheckRecord]:
    """Every check of the running configuration, every setting resolved."""
    c = tables.checks.c
    rows = await session.execute(
        sa.select(c.key, c.host, c.service, c.zone, c.hash, c.spec).order_by(c.key)
    )
    return [
        CheckRecord(key=key, host=host, service=service, zone=zone, hash=hash_, spec=_spec(spec))
        for key, host, service, zone, hash_, spec in rows
    ]


async def list_check_states(session: AsyncSession) -> dict[str, CheckStatus]:
    """The saved status of each check, as the engine restores it (`Engine.load`).

    The table keeps the essentials only; what it lacks is rebuilt conservatively: the last
    hard state is the current one when hard, else OK.
    """
    s = tables.check_states.c
    rows = await session.execute(
        sa.select(s.check_key, s.state, s.hard, s.attempt, s.output, s.last_check, s.last_change)
    )
    found: dict[str, CheckStatus] = {}
    for key, state, hard, attempt, output, last_check, last_change in rows:
        pending = state == PENDING or state not in CheckState.__members__
        current = CheckState.OK if pending else CheckState[state]
        changed = _seconds(last_change) or 0.0
        found[key] = CheckStatus(
            key=key,
            state=current,
            state_type=StateType.HARD if hard or pending else StateType.SOFT,
            attempt=max(1, attempt or 1),
            output=output or "",
            pending=pending,
            last_check=_seconds(last_check),
            last_state_change=changed,
            last_hard_state=current if hard else CheckState.OK,
            last_hard_change=changed,
        )
    return found


async def save_check_states(db: Database, statuses: Sequence[CheckStatus]) -> int:
    """Upsert ``statuses`` in one transaction; returns how many rows were written.

    A status whose check is no longer in ``checks`` (an import removed it while the batch
    waited) is skipped rather than violating the foreign key.
    """
    if not statuses:
        return 0
    latest = {status.key: status for status in statuses}
    table = tables.check_states
    async with db.begin() as session:
        c = tables.checks.c
        live: set[str] = set()
        for part in bulk.chunks(list(latest)):
            result = await session.execute(sa.select(c.key).where(c.key.in_(part)))
            live.update(result.scalars())
        rows = [_row(status) for key, status in latest.items() if key in live]
        if not rows:
            return 0
        insert = postgresql.insert(table) if db.dialect == "postgresql" else sqlite.insert(table)
        for part in bulk.chunks(rows, ROWS_PER_STATEMENT):
            stmt = insert.values(list(part))
            stmt = stmt.on_conflict_do_update(
                index_elements=[table.c.check_key],
                set_={
                    name: stmt.excluded[name]
                    for name in ("state", "hard", "attempt", "output", "last_check", "last_change")
                },
            )
            await session.execute(stmt)
    return len(rows)


def _row(status: CheckStatus) -> dict[str, object]:
    return {
        "check_key": status.key,
        "state": PENDING if status.pending else status.state.name,
        "hard": status.state_type is StateType.HARD,
        "attempt": status.attempt,
        "output": status.output,
        "last_check": _timestamp(status.last_check),
        "last_change": _timestamp(status.last_state_change),
    }


def _spec(value: object) -> dict[str, object]:
    assert isinstance(value, dict), "checks.spec is a JSON object"
    return value


def _timestamp(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def _seconds(value: datetime | None) -> float | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
