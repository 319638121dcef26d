"""Where a login may send the browser: a path on this site, never anywhere else."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

DEFAULT_TARGET = "/"
MAX_TARGET_LENGTH = 2048


def safe_next(target: str | None) -> str:
    """``target`` if it is a same-site relative path, else ``/``.

    Refused: absolute URLs (``https://evil``), scheme-relative ones (``//evil``), backslash
    tricks browsers read as ``//`` (``/\\evil``), control characters, and anything very long.
    """
    if not target or len(target) > MAX_TARGET_LENGTH:
        return DEFAULT_TARGET
    if not target.startswith("/") or target.startswith(("//", "/\\")):
        return DEFAULT_TARGET
    if any(ord(c) < 0x20 or ord(c) == 0x7F or c == "\\" for c in target):
        return DEFAULT_TARGET
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return DEFAULT_TARGET
    return target


def login_url(next_target: str) -> str:
    """``/login?next=...`` for a page a logged-out browser asked for."""
    return "/login?next=" + quote(safe_next(next_target), safe="/")
