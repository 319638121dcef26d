"""What a source is: something that hands over a candidate document when it has a new one.

Sources move bytes and nothing else. Whether the bytes are JSON, or a valid document, is
the intake's business; a source only says "here is a candidate", "nothing changed"
(``None``) or raises a `SourceError` that tells the poller to back off.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

#: The default size cap: far above any sane document, far below what hurts the manager.
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    """One candidate document as fetched, with the validators that let us skip refetches."""

    body: bytes
    source: str
    fetched_at: datetime
    etag: str | None = None
    last_modified: str | None = None

    def log_context(self) -> dict[str, object]:
        return {"source": self.source, "bytes": len(self.body), "etag": self.etag}


class Source(Protocol):
    """A place to fetch the desired-state document from.

    Lifecycle: open once (`watchkeeper.sources.open_source`), `fetch` as often as the
    poller likes (never concurrently), `aclose` once. The first `fetch` always returns a
    `Candidate`; later ones return ``None`` while the document is unchanged.
    """

    @property
    def name(self) -> str:
        """What operators see: the path, or the URL without credentials."""
        ...

    async def fetch(self) -> Candidate | None:
        """Return a new candidate, ``None`` if unchanged, or raise a `SourceError`."""
        ...

    async def aclose(self) -> None:
        """Release connections; the source is not used afterwards."""
        ...
