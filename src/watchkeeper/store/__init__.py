"""The store: SQLite or PostgreSQL through SQLAlchemy, with Alembic migrations.

`Database` is the handle (one per process); the functions below are the repository: readers
take an `AsyncSession` from ``db.session()``, writers take the `Database` and own their
transaction. Everything returned is a frozen value, never an ORM row.
"""

from __future__ import annotations

from watchkeeper.store.config import (
    current_version,
    get_rejection,
    get_version,
    import_snapshot,
    list_rejections,
    list_source_statuses,
    list_versions,
    plan,
    record_rejection,
    record_source_status,
    running_hashes,
)
from watchkeeper.store.db import Database
from watchkeeper.store.values import ConfigVersion, ImportOutcome, Rejection, SourceStatus

__all__ = [
    "ConfigVersion",
    "Database",
    "ImportOutcome",
    "Rejection",
    "SourceStatus",
    "current_version",
    "get_rejection",
    "get_version",
    "import_snapshot",
    "list_rejections",
    "list_source_statuses",
    "list_versions",
    "plan",
    "record_rejection",
    "record_source_status",
    "running_hashes",
]
