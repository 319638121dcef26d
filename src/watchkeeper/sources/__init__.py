"""Sources: where candidate documents come from (a file, an http(s) URL) and the poller.

open_source(spec) ──▶ Source.fetch() ──▶ Candidate | None ──▶ Poller ──▶ on_candidate
                             │ SourceError
                             └──▶ backoff; SourceStatus.ok = False; config untouched
"""

from __future__ import annotations

from watchkeeper.sources.base import DEFAULT_MAX_BYTES, Candidate, Source
from watchkeeper.sources.factory import open_source
from watchkeeper.sources.file import FileSource
from watchkeeper.sources.http import HttpSource, display_url
from watchkeeper.sources.poller import Poller, SourceStatus

__all__ = [
    "DEFAULT_MAX_BYTES",
    "Candidate",
    "FileSource",
    "HttpSource",
    "Poller",
    "Source",
    "SourceStatus",
    "display_url",
    "open_source",
]
