"""Small pure helpers the page templates use: ages, durations, times, state classes.

Pages show times twice: an absolute UTC timestamp (in a ``title``) and a short relative
age ("3m 12s ago"), the way Icinga Web and Thruk do; live fragments re-render both.
"""

from __future__ import annotations

from datetime import UTC, datetime

#: CSS class per state name; anything unknown is shown as PENDING (grey).
STATE_CLASSES = {
    "OK": "st-ok",
    "UP": "st-ok",
    "WARNING": "st-warning",
    "CRITICAL": "st-critical",
    "DOWN": "st-critical",
    "UNKNOWN": "st-unknown",
    "UNREACHABLE": "st-unknown",
    "PENDING": "st-pending",
    "ONLINE": "st-ok",
    "WAITING": "st-warning",
    "OFFLINE": "st-critical",
}
#: The order states are listed in counts and filters: problems by severity, then the rest.
SERVICE_STATES = ("CRITICAL", "WARNING", "UNKNOWN", "OK", "PENDING")
HOST_STATES = ("DOWN", "UNREACHABLE", "UP", "PENDING")

_UNITS = ((86_400, "d"), (3_600, "h"), (60, "m"), (1, "s"))


def state_class(state: str | None) -> str:
    """The CSS class that colours ``state`` (``st-ok``, ``st-critical``, ...)."""
    return STATE_CLASSES.get((state or "").upper(), "st-pending")


def duration(seconds: float | None) -> str:
    """``1d 4h``, ``3m 12s``, ``5s``: the two largest units, for compact tables."""
    if seconds is None:
        return "-"
    left = max(0, round(seconds))
    if left == 0:
        return "0s"
    parts = []
    for size, unit in _UNITS:
        count, left = divmod(left, size)
        if count:
            parts.append(f"{count}{unit}")
        if len(parts) == 2:
            break
    return " ".join(parts)


def age(epoch: float | None, now: float) -> str:
    """How long ago ``epoch`` was (``3m 12s ago``), or how far ahead (``in 20s``)."""
    if epoch is None:
        return "never"
    if epoch > now + 0.5:
        return f"in {duration(epoch - now)}"
    return f"{duration(now - epoch)} ago"


def timestamp(epoch: float | datetime | None) -> str:
    """An absolute UTC time, to the second: ``2026-01-01 12:00:05Z``."""
    if epoch is None:
        return "-"
    moment = epoch if isinstance(epoch, datetime) else datetime.fromtimestamp(epoch, UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def epoch_of(moment: float | datetime | None) -> float | None:
    """Seconds since the epoch for a store datetime (or a float passed through)."""
    if moment is None or isinstance(moment, float | int):
        return moment
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def split_output(output: str) -> tuple[str, str]:
    """A plugin's first line (its status) and the long output after it, if any."""
    first, _, rest = output.partition("\n")
    return first, rest.strip("\n")
