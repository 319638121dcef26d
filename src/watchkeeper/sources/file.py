"""A document in a local file, re-read when it changes.

Change detection is the cheap ``stat`` triple (mtime, size, inode) first, so an unchanged
file costs one ``fstat`` per poll; then the content, so touching or rewriting a file with
the same bytes is not a new candidate. An editor's save-by-rename changes the inode and
is caught too.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from watchkeeper.clock import Clock, utcnow
from watchkeeper.errors import SourceTooLarge, SourceUnavailable
from watchkeeper.sources.base import DEFAULT_MAX_BYTES, Candidate

#: A file modified this recently may change again within the same mtime tick (Linux
#: timestamps are coarse), so its stat triple is not trusted: git's "racy clean" problem.
RACY_WINDOW_NS = 2_000_000_000

StatKey = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class _Read:
    key: StatKey | None  # None: do not trust the stat triple next time
    body: bytes | None  # None: the stat triple says unchanged, nothing was read


class FileSource:
    """Polls one file; each read runs in a thread so a slow disk never stalls the loop."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Clock = utcnow,
    ) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._clock = clock
        self._key: StatKey | None = None
        self._digest: bytes | None = None

    @property
    def name(self) -> str:
        return str(self.path)

    async def fetch(self) -> Candidate | None:
        read = await asyncio.to_thread(self._read, self._key)
        self._key = read.key
        if read.body is None:
            return None
        digest = hashlib.sha256(read.body).digest()
        if digest == self._digest:
            return None
        self._digest = digest
        return Candidate(body=read.body, source=self.name, fetched_at=self._clock())

    async def aclose(self) -> None:
        """Nothing to release: the file is opened and closed on each read."""

    def _read(self, known: StatKey | None) -> _Read:
        try:
            with self.path.open("rb") as fh:
                st = os.fstat(fh.fileno())
                key = (st.st_mtime_ns, st.st_size, st.st_ino)
                if key == known:
                    return _Read(key, None)
                if st.st_size > self.max_bytes:
                    raise self._too_large()
                body = fh.read(self.max_bytes + 1)  # the file may grow after fstat
        except OSError as exc:
            raise SourceUnavailable(f"cannot read {self.path}: {exc.strerror}") from exc
        if len(body) > self.max_bytes:
            raise self._too_large()
        racy = time.time_ns() - st.st_mtime_ns < RACY_WINDOW_NS
        return _Read(None if racy else key, body)

    def _too_large(self) -> SourceTooLarge:
        return SourceTooLarge(f"{self.path} is larger than the {self.max_bytes}-byte cap")
