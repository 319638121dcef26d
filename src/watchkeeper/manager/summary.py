"""The one-line summary of check states ``up`` prints, kept up to date per change.

``6 checks: 5 OK, 1 CRITICAL (localhost!demo-flag)``: counts by state, how many did not
run, and the worst problems by name. `summarize` computes it from every status; `Tally`
keeps it as statuses change, so a result costs the same with 100 checks as with 10,000
(walking and sorting every status after each result made ``up`` fall behind at 10,000).
A change is a count update and at most one heap push; a line reads ``show`` names.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Mapping

from watchkeeper.engine.statemachine import CheckStatus

#: The states in the order the line lists them.
ORDER = ("OK", "WARNING", "CRITICAL", "UNKNOWN", "PENDING")


def _name(status: CheckStatus) -> str:
    return "PENDING" if status.pending else status.state.name


def _line(
    total: int, counts: Mapping[str, int], not_run: int, problems: int, named: list[str], show: int
) -> str:
    parts = [f"{counts[name]} {name}" for name in ORDER if counts.get(name)]
    line = f"{total} check{'s' if total != 1 else ''}: " + ", ".join(parts)
    if not_run:
        line += f"; {not_run} not run"
    if problems:
        more = f", +{problems - show} more" if problems > show else ""
        line += f" ({', '.join(named)}{more})"
    return line


def summarize(statuses: Mapping[str, CheckStatus], *, show: int = 3) -> str:
    """The line from every status (what `Tally` keeps incrementally)."""
    counts = Counter(_name(s) for s in statuses.values())
    not_run = sum(1 for s in statuses.values() if s.not_run)
    problems = sorted(
        (s for s in statuses.values() if s.is_problem), key=lambda s: (-s.state.severity, s.key)
    )
    named = [s.key for s in problems[:show]]
    return _line(len(statuses), counts, not_run, len(problems), named, show)


class Tally:
    """`summarize`'s line, kept as statuses are set and removed.

    Problems are kept in one heap of keys per severity; an entry whose key has since
    changed is dropped when it reaches the top (and the heap is rebuilt once stale
    entries outnumber live ones), so reading the worst ``show`` costs ``show`` pops.
    """

    def __init__(self, *, show: int = 3) -> None:
        self.show = show
        self._clear()

    def _clear(self) -> None:
        #: key -> (state name, not run, problem severity or None)
        self._entries: dict[str, tuple[str, bool, int | None]] = {}
        self._counts: Counter[str] = Counter()
        self._not_run = 0
        self._problems: Counter[int] = Counter()
        self._heaps: dict[int, list[str]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def reset(self, statuses: Iterable[CheckStatus]) -> None:
        self._clear()
        for status in statuses:
            self.set(status)

    def set(self, status: CheckStatus) -> None:
        severity = status.state.severity if status.is_problem else None
        entry = (_name(status), bool(status.not_run), severity)
        old = self._entries.get(status.key)
        if old == entry:
            return
        if old is not None:
            self._forget(old)
        self._entries[status.key] = entry
        self._counts[entry[0]] += 1
        self._not_run += entry[1]
        if severity is not None:
            self._problems[severity] += 1
            heap = self._heaps.setdefault(severity, [])
            heapq.heappush(heap, status.key)
            if len(heap) > 2 * self._problems[severity] + 64:
                live = [k for k, e in self._entries.items() if e[2] == severity]
                heapq.heapify(live)
                self._heaps[severity] = live

    def remove(self, key: str) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self._forget(old)

    def _forget(self, entry: tuple[str, bool, int | None]) -> None:
        name, not_run, severity = entry
        self._counts[name] -= 1
        self._not_run -= not_run
        if severity is not None:
            self._problems[severity] -= 1

    def _worst(self) -> list[str]:
        named: list[str] = []
        for severity in sorted(self._heaps, reverse=True):
            heap = self._heaps[severity]
            taken: list[str] = []
            while heap and len(named) < self.show:
                key = heapq.heappop(heap)
                entry = self._entries.get(key)
                if entry is None or entry[2] != severity or key in taken:
                    continue  # stale, or a second copy: gone for good
                taken.append(key)
                named.append(key)
            for key in taken:
                heapq.heappush(heap, key)
            if len(named) == self.show:
                break
        return named

    def line(self) -> str:
        return _line(
            len(self._entries),
            self._counts,
            self._not_run,
            sum(self._problems.values()),
            self._worst(),
            self.show,
        )
