"""From what the operator typed to a `Source`: a path or an http(s) URL.

Everything that can be wrong with the arguments is refused here, as a `UsageError` that
names the flag, so a typo stops the command at once instead of becoming a failing source.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

import httpx

from watchkeeper.clock import Clock, utcnow
from watchkeeper.errors import UsageError
from watchkeeper.secrets import is_secret_ref
from watchkeeper.sources.base import DEFAULT_MAX_BYTES, Source
from watchkeeper.sources.file import FileSource
from watchkeeper.sources.http import HttpSource, display_url

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def open_source(
    spec: str,
    *,
    timeout: float = 10.0,
    max_bytes: int = DEFAULT_MAX_BYTES,
    bearer_token: str | None = None,
    clock: Clock = utcnow,
) -> Source:
    """Open the source ``spec`` names: ``http(s)://…``, ``file:///path`` or a plain path.

    ``bearer_token`` must be a secret reference (``env:NAME`` or ``file:/path``), never the
    token itself, so the token stays out of process listings and shell history.
    """
    if not spec.strip():
        raise UsageError("source: empty; expected a file path or an http(s) URL")
    if not timeout > 0:
        raise UsageError(f"--timeout: must be a positive number of seconds, got {timeout}")
    if max_bytes < 1:
        raise UsageError(f"--max-bytes: must be a positive number of bytes, got {max_bytes}")
    if bearer_token is not None and not is_secret_ref(bearer_token):
        raise UsageError(
            "--bearer-token: expected a secret reference (env:NAME or file:/path), "
            "not the token itself"
        )
    match = _SCHEME.match(spec)
    scheme = match.group(1).lower() if match else None
    if scheme in ("http", "https"):
        _check_url(spec)
        if bearer_token is not None and "@" in urlsplit(spec).netloc:
            raise UsageError(
                "--bearer-token: the URL carries credentials already; give one or the other"
            )
        return HttpSource(
            spec, timeout=timeout, max_bytes=max_bytes, bearer_token=bearer_token, clock=clock
        )
    if scheme not in (None, "file"):
        raise UsageError(
            f"source: unsupported scheme {scheme}:// (expected a file path or an http(s) URL)"
        )
    if bearer_token is not None:
        raise UsageError("--bearer-token: only an http(s) source takes a bearer token")
    return FileSource(_file_path(spec), max_bytes=max_bytes, clock=clock)


def _check_url(spec: str) -> None:
    try:
        url = httpx.URL(spec)
    except httpx.InvalidURL as exc:
        raise UsageError(f"source: not a valid URL: {display_url(spec)} ({exc})") from exc
    if not url.host:
        raise UsageError(f"source: no host in {display_url(spec)}")


def _file_path(spec: str) -> str:
    if not spec.lower().startswith("file://"):
        return spec
    parts = urlsplit(spec)
    if parts.netloc not in ("", "localhost"):
        raise UsageError(f"source: file URL on another host ({parts.netloc}): {spec}")
    if not parts.path:
        raise UsageError(f"source: no path in {spec}")
    return unquote(parts.path)
