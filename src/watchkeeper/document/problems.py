"""Problems found in a candidate document: where (a JSON pointer), what, and how bad."""

from __future__ import annotations

import difflib
import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


class Severity(enum.Enum):
    """How a problem affects the candidate."""

    #: The candidate is rejected whole.
    ERROR = "error"
    #: Reported, the candidate is still accepted.
    WARNING = "warning"


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """One finding, located by an RFC 6901 JSON pointer into the candidate."""

    pointer: str
    message: str
    severity: Severity = Severity.ERROR

    def __str__(self) -> str:
        return f"{self.pointer or '/'}: {self.message}"

    def as_dict(self) -> dict[str, str]:
        return {"pointer": self.pointer, "message": self.message, "severity": self.severity.value}


def pointer(*parts: str | int) -> str:
    """Build a JSON pointer, escaping ``~`` and ``/`` as RFC 6901 says."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def errors(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity is Severity.ERROR]


def warnings(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity is Severity.WARNING]


def sort_problems(problems: Sequence[Problem]) -> list[Problem]:
    """Order problems as they appear in the document (numeric array indices, not text order)."""

    def key(p: Problem) -> tuple[tuple[int, int | str], ...]:
        parts = p.pointer.split("/")[1:]  # isdigit() alone takes "¹", which int() refuses
        return tuple((0, int(s)) if s.isascii() and s.isdigit() else (1, s) for s in parts)

    return sorted(problems, key=key)


def did_you_mean(name: str, choices: Sequence[str]) -> str:
    """`` (did you mean 'local'?)`` when one of ``choices`` is close to ``name``, else ""."""
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
