"""The store: SQLite or PostgreSQL through SQLAlchemy, with Alembic migrations.

`Database` is the handle (one per process); the functions below are the repository: readers
take an `AsyncSession` from ``db.session()``, writers take the `Database` and own their
transaction. Everything returned is a frozen value, never an ORM row.
"""

from __future__ import annotations

from watchkeeper.store.checks import (
    HistoryKind,
    StateHistoryEntry,
    list_check_states,
    list_checks,
    list_state_history,
    page_state_history,
    prune_state_history,
    save_check_states,
)
from watchkeeper.store.config import (
    current_version,
    get_rejection,
    get_version,
    import_snapshot,
    list_objects,
    list_rejections,
    list_source_statuses,
    list_versions,
    page_rejections,
    page_versions,
    plan,
    prune_versions,
    record_rejection,
    record_source_status,
    running_hashes,
)
from watchkeeper.store.db import Database
from watchkeeper.store.values import ConfigVersion, ImportOutcome, Rejection, SourceStatus
from watchkeeper.store.workers import (
    WorkerKey,
    WorkerKeyConflict,
    add_worker_key,
    find_by_public_key,
    list_worker_keys,
    revoke_worker_key,
)

__all__ = [
    "ConfigVersion",
    "Database",
    "HistoryKind",
    "ImportOutcome",
    "Rejection",
    "SourceStatus",
    "StateHistoryEntry",
    "WorkerKey",
    "WorkerKeyConflict",
    "add_worker_key",
    "current_version",
    "find_by_public_key",
    "get_rejection",
    "get_version",
    "import_snapshot",
    "list_check_states",
    "list_checks",
    "list_objects",
    "list_rejections",
    "list_source_statuses",
    "list_state_history",
    "list_versions",
    "list_worker_keys",
    "page_rejections",
    "page_state_history",
    "page_versions",
    "plan",
    "prune_state_history",
    "prune_versions",
    "record_rejection",
    "record_source_status",
    "revoke_worker_key",
    "running_hashes",
    "save_check_states",
]
