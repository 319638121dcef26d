"""Files that hold secrets or the database: readable by their owner only.

The data directory holds the SQLite database (password, session and token hashes, every
configuration version, the audit), the manager's SSH host key, the embedded worker's key
and the API token. What Watchkeeper creates there is private from the start: the
directory 0700, files 0600 (SQLite's ``-wal`` and ``-shm`` files take the database
file's mode). What already exists is left as the operator made it, and `looser` says
which of it others can read, for a warning at start.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

#: The manager token's file in the data directory (`watchkeeper.web.auth`).
TOKEN_FILE = "api-token"
DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create ``path`` (and its parents) if missing; a new directory is 0700."""
    if not path.is_dir():
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        os.chmod(path, DIR_MODE)  # mkdir's mode is filtered by the umask
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty, 0600, if it does not exist; an existing one is kept."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return path
    os.close(fd)
    os.chmod(path, FILE_MODE)
    return path


def looser(paths: Iterable[Path]) -> list[str]:
    """``path (mode 0644)`` for each existing path group or others may read or enter."""
    found = []
    for path in paths:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            found.append(f"{path} (mode {mode:04o})")
    return found
