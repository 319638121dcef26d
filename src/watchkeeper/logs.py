"""One log format for every line a Watchkeeper process writes, and the NOTICE level.

Every role logs through Python's `logging`, and so do the libraries it runs (uvicorn,
asyncssh, alembic): `configure` installs one handler on the root logger, and uvicorn is
started with ``log_config=None`` so its lines reach that handler instead of its own.

Two shapes, one per kind of reader:

* ``daemon`` (``manager``, ``worker``, commands): ``2026-12-03 11:05:38 WARNING
  watchkeeper.transport.client: message``, for journald, files and log shippers;
* ``console`` (``up``, a person at a terminal): ``11:05:38 message``, with the level
  before the message only from WARNING up.

NOTICE (25, as syslog's "normal but significant") sits between INFO and WARNING: what an
operator must see even on a terse console, where INFO would drown it: a zone that got its
worker back, a worker that reconnected. ``up`` shows NOTICE and above; the daemons INFO.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal, TextIO

#: Normal but significant: shown on ``up``'s console, where INFO is not.
NOTICE = 25
logging.addLevelName(NOTICE, "NOTICE")

Style = Literal["daemon", "console"]

#: The logger of what a long-running command tells its operator (ready, the URL, the first
#: admin's password, summary lines): at NOTICE, shown whatever ``--log-level`` says.
console = logging.getLogger("watchkeeper.console")
console.setLevel(NOTICE)

#: Libraries whose INFO is per connection or per migration step: WARNING and up only.
QUIET_LIBRARIES = ("asyncssh", "alembic", "uvicorn.access")


class ConsoleFormatter(logging.Formatter):
    """``HH:MM:SS message``; ``HH:MM:SS WARNING message`` from WARNING up."""

    def __init__(self) -> None:
        super().__init__("%(message)s", datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        when = self.formatTime(record, self.datefmt)
        if record.levelno >= logging.WARNING:
            return f"{when} {record.levelname} {text}"
        return f"{when} {text}"


def say(message: str) -> None:
    """Tell the operator: one console line, in the log format, at any log level."""
    console.log(NOTICE, message)


def formatter(style: Style) -> logging.Formatter:
    if style == "console":
        return ConsoleFormatter()
    return logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%Y-%m-%d %H:%M:%S"
    )


def configure(level: int, style: Style, *, stream: TextIO | None = None) -> None:
    """Send every logger's records at ``level`` and above to ``stream`` in ``style``.

    Replaces the root logger's handlers, so calling it twice does not double lines.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(style))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, level))


def parse_level(name: str) -> int:
    """A level name (``debug``, ``INFO``, ``notice``...) as its number; ValueError if none."""
    value = logging.getLevelName(name.upper())
    if not isinstance(value, int):
        raise ValueError(f"not a log level: {name!r}")
    return value
