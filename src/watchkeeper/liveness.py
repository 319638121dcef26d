"""What a long-running role says about itself, and how `watchkeeper health` judges it.

A container's HEALTHCHECK runs ``watchkeeper health`` in the container beside the role,
with no flags: the role wrote its status file into the data volume (by default
``status.json`` in the data directory, or beside a worker's key), and the file says what
to check. For a manager (``up`` or ``manager``) it names the web address: healthy is
``GET /api/v1/health`` answering 200, which needs the database too. For a worker it
records the link: healthy is connected to the manager, with a heartbeat written within
three heartbeat intervals (a silent network cut stops the beats once SSH keepalive gives
up on the link).

The file holds no secret; it is written whole (a temporary file renamed over it), so a
reader never sees half of it.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

#: The status file's name in a data directory (or beside a worker's key).
STATUS_FILE = "status.json"
#: A worker whose last heartbeat is older than this many intervals is not healthy.
MISSED_BEATS = 3

Role = Literal["manager", "worker"]


class StatusUnreadable(Exception):
    """The status file is missing or is not one we wrote."""


@dataclass(frozen=True)
class Status:
    """One role's word about itself at ``at`` (Unix seconds)."""

    role: Role
    pid: int
    at: float
    #: A manager's web address, e.g. ``http://127.0.0.1:8470``.
    url: str | None = None
    #: A worker's link: connected (welcomed by the manager) or not.
    connected: bool | None = None
    #: A worker's heartbeat interval (seconds), as the manager's welcome set it.
    heartbeat: float | None = None
    #: The manager a worker dials, ``host:port``.
    manager: str | None = None


@dataclass(frozen=True)
class Verdict:
    healthy: bool
    message: str


def judge_worker(status: Status, now: float) -> Verdict:
    """Healthy when connected with a heartbeat written in the last `MISSED_BEATS` intervals."""
    where = status.manager or "its manager"
    if not status.connected:
        ago = max(0.0, now - status.at)
        return Verdict(False, f"worker not connected to {where} (for {ago:.0f} s)")
    interval = status.heartbeat or 0.0
    age = now - status.at
    if age > MISSED_BEATS * interval:
        return Verdict(
            False,
            f"worker's last heartbeat to {where} was {age:.0f} s ago "
            f"(more than {MISSED_BEATS} x {interval:g} s)",
        )
    return Verdict(True, f"worker connected to {where} (heartbeat {age:.0f} s ago)")


def write(path: Path, status: Status) -> None:
    """Replace ``path`` with ``status`` at once (a temporary file renamed over it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".status-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(status), f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read(path: Path) -> Status:
    try:
        raw = json.loads(path.read_text())
        return Status(**raw)
    except FileNotFoundError as exc:
        raise StatusUnreadable(
            f"no status file {path}: no manager or worker has run with this data "
            "directory (or pass --status-file)"
        ) from exc
    except (OSError, ValueError, TypeError) as exc:
        raise StatusUnreadable(f"cannot read the status file {path}: {exc}") from exc
