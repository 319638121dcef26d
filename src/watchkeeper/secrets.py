"""Secret references: the document names where a secret lives, never the secret itself.

A reference is ``env:NAME`` (an environment variable of the process that needs it) or
``file:/absolute/path`` (the file's content, trailing newline removed). Resolution happens
at the edge that uses the secret, on the machine that uses it, so secrets never travel
with the document or sit in the database.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from watchkeeper.errors import SecretError

SECRET_REF_PATTERN = r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:/\S.*)$"
_SECRET_REF = re.compile(SECRET_REF_PATTERN)


def is_secret_ref(value: str) -> bool:
    """Tell whether ``value`` is a reference rather than a literal secret."""
    return bool(_SECRET_REF.fullmatch(value))


def resolve_secret(ref: str, environ: Mapping[str, str] | None = None) -> str:
    """Return the secret that ``ref`` points at, or raise `SecretError` naming the reference."""
    if not is_secret_ref(ref):
        raise SecretError(f"not a secret reference (expected env:NAME or file:/path): {ref[:3]}…")
    scheme, _, target = ref.partition(":")
    if scheme == "env":
        env = os.environ if environ is None else environ
        if target not in env:
            raise SecretError(f"environment variable {target} is not set (secret {ref})")
        return env[target]
    try:
        return Path(target).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise SecretError(f"cannot read secret file {target}: {exc.strerror}") from exc
