"""The running checks, their runtime state and its history, for the engine's runner.

The engine keeps check state in memory and decides; this module is how that state outlives
the process. `list_checks` gives the engine its configuration at start, `list_check_states`
what the last run knew, and `save_check_states` writes the statuses a batch of results
changed together with the history entries (`StateChange`, `HostStateChange`) it produced,
in one transaction per batch (one per result would cap throughput at the database's commit
rate). `list_state_history` reads the history back, newest first, and
`prune_state_history` ages it out: history is not tied to the checks, so a removed check's
past stays readable.

Times are the engine's float seconds (epoch seconds: the runner feeds it ``time.time()``)
and become UTC timestamps here, at microsecond precision.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession

from watchkeeper.document.normalize import CheckRecord
from watchkeeper.engine.reachability import HostStateChange
from watchkeeper.engine.statemachine import CheckStatus, StateChange
from watchkeeper.engine.states import StateType
from watchkeeper.results import CheckState
from watchkeeper.store import bulk, tables
from watchkeeper.store.db import Database
from watchkeeper.store.fencing import current_term

#: What ``check_states.state`` holds for a check that has no result yet.
PENDING = "PENDING"
#: How long history is kept by default (`prune_state_history`): a year and a bit, so last
#: year's incident can be compared with this year's.
HISTORY_RETENTION = timedelta(days=400)
#: Rows per prune transaction: a large first prune must not hold SQLite's write lock past
#: the other writers' busy timeout.
PRUNE_BATCH = bulk.PRUNE_BATCH

#: What the engine hands over as history.
HistoryChange = StateChange | HostStateChange

_STATUS_COLUMNS = (
    "state",
    "hard",
    "attempt",
    "output",
    "last_check",
    "last_change",
    "pending",
    "stale",
    "not_run",
    "host_problem",
    "last_hard_state",
    "last_hard_change",
    "term",
)
_HISTORY_COLUMNS = (
    "check_key",
    "kind",
    "at",
    "state",
    "state_type",
    "attempt",
    "output",
    "previous_state",
    "hard_change",
)


#: Which of a flush's keys are still checks.
_LIVE = sa.select(tables.checks.c.key).where(
    tables.checks.c.key.in_(sa.bindparam("keys", expanding=True))
)


class HistoryKind(enum.Enum):
    """Whose state a history entry records."""

    #: A check's state (OK, WARNING, CRITICAL, UNKNOWN) with its attempt.
    CHECK = "check"
    #: A host's state (UP, DOWN, UNREACHABLE), keyed by its host check; no attempt.
    HOST = "host"


@dataclass(frozen=True, slots=True, kw_only=True)
class StateHistoryEntry:
    """One saved state change; ``state`` names a `CheckState`, or a `HostState` for a host."""

    #: Increases with every entry written: the paging cursor of `list_state_history`.
    id: int
    check_key: str
    kind: HistoryKind
    at: datetime
    state: str
    state_type: StateType
    #: None for a host entry (its host check's entry has it).
    attempt: int | None
    output: str
    #: None for a check's first result.
    previous_state: str | None
    #: The last hard state changed: the changes notifications act on.
    hard_change: bool

    @classmethod
    def from_row(cls, row: tables.StateHistoryRow) -> StateHistoryEntry:
        return cls(
            id=row.id,
            check_key=row.check_key,
            kind=HistoryKind(row.kind),
            at=row.at,
            state=row.state,
            state_type=StateType(row.state_type),
            attempt=row.attempt,
            output=row.output,
            previous_state=row.previous_state,
            hard_change=row.hard_change,
        )

    def log_context(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "check": self.check_key,
            "kind": self.kind.value,
            "state": self.state,
            "state_type": self.state_type.value,
        }


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
    """The saved status of each check, exactly as saved, for `Engine.load`.

    Rows written before migration 0003 lack the last hard state and its time; those are
    rebuilt: the current state when hard (a hard state is the last hard state), else OK (a
    soft problem only follows OK), changed when the state last changed.
    """
    s = tables.check_states.c
    rows = await session.execute(sa.select(s.check_key, *(s[name] for name in _STATUS_COLUMNS)))
    found: dict[str, CheckStatus] = {}
    for row in rows:
        pending = row.pending or row.state not in CheckState.__members__
        current = CheckState.OK if pending else CheckState[row.state]
        changed = _seconds(row.last_change) or 0.0
        if row.last_hard_state in CheckState.__members__:
            hard_state = CheckState[row.last_hard_state]
        else:
            hard_state = current if row.hard and not pending else CheckState.OK
        hard_changed = _seconds(row.last_hard_change)
        found[row.check_key] = CheckStatus(
            key=row.check_key,
            state=current,
            state_type=StateType.HARD if row.hard or pending else StateType.SOFT,
            attempt=row.attempt,
            output=row.output or "",
            pending=pending,
            stale=row.stale,
            not_run=row.not_run or "",
            host_problem=row.host_problem,
            last_check=_seconds(row.last_check),
            last_state_change=changed,
            last_hard_state=hard_state,
            last_hard_change=changed if hard_changed is None else hard_changed,
        )
    return found


async def save_check_states(
    db: Database, statuses: Sequence[CheckStatus], changes: Sequence[HistoryChange] = ()
) -> int:
    """Upsert ``statuses`` and append ``changes`` to the history, in one transaction.

    Returns how many status rows were written. A status whose check is no longer in
    ``checks`` (an import removed it while the batch waited) is skipped rather than
    violating the foreign key; its history entries are written all the same.
    """
    if not statuses and not changes:
        return 0
    latest = {status.key: status for status in statuses}
    async with db.begin() as session:
        live: set[str] = set()
        for part in bulk.chunks(list(latest)):
            result = await session.execute(_LIVE, {"keys": list(part)})
            live.update(result.scalars())
        term = current_term()
        dialect = db.engine.dialect
        stamp = _bind(tables.check_states.c.last_check, dialect)
        rows = [_row(status, term, stamp) for key, status in latest.items() if key in live]
        # SQL made once, rows as an executemany: a Core multi-row VALUES of a flush was
        # compiled again on every flush (most of the manager's time at saturation).
        await bulk.upsert(session, tables.check_states, "check_key", _STATUS_COLUMNS, rows)
        at = _bind(tables.state_history.c.at, dialect)
        history = (_history_row(change, at) for change in changes)
        await bulk.insert(session, tables.state_history, _HISTORY_COLUMNS, history)
    return len(rows)


async def list_state_history(
    session: AsyncSession,
    *,
    check_key: str | None = None,
    kind: HistoryKind | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[StateHistoryEntry]:
    """History entries, newest (highest id) first, at most ``limit`` of them.

    ``since`` is inclusive and ``until`` exclusive. For the next page, pass the last entry's
    id as ``before_id``: ids follow the order the engine made the changes in.
    """
    if limit < 1:
        raise ValueError(f"limit must be positive, not {limit}")
    stmt = _history(check_key, kind, since, until, before_id).limit(limit)
    return [StateHistoryEntry.from_row(found) for found in await session.scalars(stmt)]


async def page_state_history(
    session: AsyncSession,
    *,
    check_key: str | None = None,
    limit: int = 100,
    offset: int = 0,
    before_id: int | None = None,
) -> bulk.Listed[StateHistoryEntry]:
    """A page of `list_state_history` and how many entries match."""
    stmt = _history(check_key, None, None, None, before_id)
    return await bulk.listed(session, stmt, StateHistoryEntry.from_row, limit=limit, offset=offset)


def _history(
    check_key: str | None,
    kind: HistoryKind | None,
    since: datetime | None,
    until: datetime | None,
    before_id: int | None,
) -> sa.Select[Any]:
    row = tables.StateHistoryRow
    stmt = sa.select(row).order_by(row.id.desc())
    if check_key is not None:
        stmt = stmt.where(row.check_key == check_key)
    if kind is not None:
        stmt = stmt.where(row.kind == kind.value)
    if since is not None:
        stmt = stmt.where(row.at >= since)
    if until is not None:
        stmt = stmt.where(row.at < until)
    if before_id is not None:
        stmt = stmt.where(row.id < before_id)
    return stmt


async def prune_state_history(
    db: Database, *, older_than: datetime, batch: int = PRUNE_BATCH
) -> int:
    """Delete history entries from before ``older_than``; returns how many went.

    `HISTORY_RETENTION` is the usual age: ``older_than=now - retention``.
    """
    return await bulk.prune(db, tables.state_history, older_than=older_than, batch=batch)


def _row(
    status: CheckStatus, term: int | None, stamp: Callable[[datetime | None], Any]
) -> tuple[Any, ...]:
    """A ``check_states`` row: the key, then `_STATUS_COLUMNS`, as the driver takes them."""
    return (
        status.key,
        PENDING if status.pending else status.state.name,
        status.state_type is StateType.HARD,
        status.attempt,
        status.output,
        stamp(_timestamp(status.last_check)),
        stamp(_timestamp(status.last_state_change)),
        status.pending,
        status.stale,
        status.not_run[: tables.NOT_RUN_LENGTH],
        status.host_problem,
        status.last_hard_state.name,
        stamp(_timestamp(status.last_hard_change)),
        term,
    )


def _history_row(change: HistoryChange, at: Callable[[datetime], Any]) -> tuple[Any, ...]:
    """A ``state_history`` row in `_HISTORY_COLUMNS` order, as `bulk.insert` takes it."""
    when = at(datetime.fromtimestamp(change.at, UTC))
    if isinstance(change, StateChange):
        previous = None if change.from_state is None else change.from_state.name
        return (
            change.key,
            HistoryKind.CHECK.value,
            when,
            change.to_state.name,
            change.to_type.value,
            change.attempt,
            change.output,
            previous,
            change.hard,
        )
    return (
        change.host,
        HistoryKind.HOST.value,
        when,
        change.to_state.name,
        change.to_type.value,
        None,
        change.output,
        change.from_state.name,
        change.hard,
    )


def _bind(column: sa.Column[Any], dialect: Dialect) -> Callable[[Any], Any]:
    """What the column's type would send the driver: `bulk` bypasses SQLAlchemy's types.

    For `UTCDateTime` that is an aware datetime on PostgreSQL, and on SQLite the naive UTC
    text SQLAlchemy writes (so stored values compare correctly with bound ones).
    """
    process = column.type.dialect_impl(dialect).bind_processor(dialect)
    return process if process is not None else _same


def _same(value: Any) -> Any:
    return value


def _spec(value: object) -> dict[str, object]:
    assert isinstance(value, dict), "checks.spec is a JSON object"
    return value


def _timestamp(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def _seconds(value: datetime | None) -> float | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
