"""Frozen values the store hands out, so ORM rows (and their lazy loads) never leave it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from watchkeeper.document.diff import ConfigDiff
from watchkeeper.store.tables import ConfigVersionRow, RejectedCandidateRow, SourceStatusRow


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigVersion:
    """An accepted configuration; ``document`` is only loaded by `get_version`."""

    id: int
    content_hash: str
    source: str
    created_at: datetime
    #: Counts per kind of what this version added, changed and removed (`ConfigDiff.summary`).
    summary: dict[str, Any]
    #: The candidate's warnings, as `Problem.as_dict` gives them.
    warnings: list[dict[str, Any]]
    document: dict[str, Any] | None = None

    @classmethod
    def from_row(cls, row: ConfigVersionRow, *, with_document: bool = False) -> ConfigVersion:
        return cls(
            id=row.id,
            content_hash=row.content_hash,
            source=row.source,
            created_at=row.created_at,
            summary=row.summary,
            warnings=row.warnings,
            document=orjson.loads(row.document) if with_document else None,
        )

    def log_context(self) -> dict[str, Any]:
        return {"id": self.id, "content_hash": self.content_hash, "source": self.source}


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportOutcome:
    """What an import did: the version now running, its diff, and whether it is new."""

    version: ConfigVersion
    diff: ConfigDiff
    #: False when the candidate was identical to the running version (nothing was written).
    created: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejection:
    """A refused candidate and why; repeats of the same content from a source are counted."""

    id: int
    content_hash: str | None
    source: str
    first_seen: datetime
    last_seen: datetime
    times: int
    problems: list[dict[str, Any]]
    #: The candidate as received (at most 1 MiB of it); only loaded by `get_rejection`.
    document: str | None = None

    @classmethod
    def from_row(cls, row: RejectedCandidateRow, *, with_document: bool = False) -> Rejection:
        return cls(
            id=row.id,
            content_hash=row.content_hash,
            source=row.source,
            first_seen=row.first_seen,
            last_seen=row.last_seen,
            times=row.times,
            problems=row.problems,
            document=row.document if with_document else None,
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, without the document."""
        return {
            "id": self.id,
            "content_hash": self.content_hash,
            "source": self.source,
            "first_seen": self.first_seen.isoformat(),
            "last_seen": self.last_seen.isoformat(),
            "times": self.times,
            "problems": self.problems,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceStatus:
    """The last recorded poll of a source."""

    name: str
    ok: bool
    last_attempt: datetime | None
    last_success: datetime | None
    last_error: str | None
    consecutive_failures: int
    etag: str | None = None
    last_modified: str | None = None

    @classmethod
    def from_row(cls, row: SourceStatusRow) -> SourceStatus:
        return cls(
            name=row.name,
            ok=row.ok,
            last_attempt=row.last_attempt,
            last_success=row.last_success,
            last_error=row.last_error,
            consecutive_failures=row.consecutive_failures,
            etag=row.etag,
            last_modified=row.last_modified,
        )
