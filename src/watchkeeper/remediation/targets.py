"""What remediation knows of the targets: checks, problem states, reachability, metric alarms.

Fed by the engine's turns (`Targets.observe`) and the alarm book (`metric_alarm`); asked
for the problems rules match on (`problems`). Pure: memory only, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from watchkeeper.document.normalize import CheckRecord
from watchkeeper.engine import CheckStatus, HostState, Observed, StateType
from watchkeeper.remediation.rules import Problem, problem_named, state_name
from watchkeeper.results import CheckState


@dataclass(frozen=True, slots=True)
class Recheck:
    """A result of a check, as a re-check after an action may be."""

    key: str
    state: CheckState
    output: str
    at: float


@dataclass(slots=True)
class Targets:
    """The checks and what the engine last said of them."""

    checks: dict[str, CheckRecord] = field(default_factory=dict)
    #: Checks in a problem state (hard or soft), as the engine last said.
    statuses: dict[str, CheckStatus] = field(default_factory=dict)
    #: Checks whose status is known (from the engine, or saved by the last run).
    known: set[str] = field(default_factory=set)
    unreachable: set[str] = field(default_factory=set)
    #: (key, metric) -> the metric alarm's state (``OK`` once it cleared).
    metrics: dict[tuple[str, str], str] = field(default_factory=dict)
    #: The problem each check of ``statuses`` is in, kept up to date by `_refresh`.
    _problems: dict[str, Problem] = field(default_factory=dict, init=False, repr=False)
    #: Host name -> its host check's key: a host's reachability changes that one problem.
    _host_checks: dict[str, str] = field(default_factory=dict, init=False, repr=False)

    def observe(self, observed: Observed, watching: Iterable[str] = ()) -> list[Recheck]:
        """Take in one turn; the results of the checks in ``watching`` (being verified)."""
        if observed.checks is not None:
            self.checks = dict(observed.checks)
            for key in [k for k in self.statuses if k not in self.checks]:
                del self.statuses[key]
            self.known &= self.checks.keys()
            self._host_checks = {r.host: k for k, r in self.checks.items() if r.service is None}
            self._problems = {}
            for key in self.statuses:
                self._refresh(key)
        for key in observed.removed:
            self.checks.pop(key, None)
            self.statuses.pop(key, None)
            self.known.discard(key)
            self._problems.pop(key, None)
        for host in observed.hosts:
            if host.state is HostState.UNREACHABLE:
                self.unreachable.add(host.host)
            else:
                self.unreachable.discard(host.host)
            if (host_check := self._host_checks.get(host.host)) is not None:
                self._refresh(host_check)
        for status in observed.statuses:
            self.known.add(status.key)
            if status.is_problem:
                self.statuses[status.key] = status
            else:
                self.statuses.pop(status.key, None)
            self._refresh(status.key)
        wanted = set(watching)
        return [
            Recheck(r.key, r.outcome.state, r.outcome.output, r.at)
            for r in observed.results
            if r.key in wanted
        ]

    def restore(self, saved: Mapping[str, CheckStatus]) -> None:
        """The statuses the last run saved, unless the engine told newer ones meanwhile."""
        for key, status in saved.items():
            if key not in self.known:
                self.known.add(key)
                if status.is_problem:
                    self.statuses[key] = status
                    self._refresh(key)

    def metric_alarm(self, key: str, metric: str, state: str) -> None:
        self.metrics[(key, metric)] = state.upper()

    def problems(self) -> list[Problem]:
        """Every target now in a problem state, and every open metric alarm.

        The checks' problems are kept as their statuses change (`_refresh`), so asking costs
        the number of problems, not a walk of every status building each one again."""
        out = list(self._problems.values())
        for (key, metric), state in self.metrics.items():
            record = self.checks.get(key)
            if record is not None and state != "OK":
                out.append(problem_named(record, state, hard=True, metric=metric))
        return out

    def _refresh(self, key: str) -> None:
        """The problem check ``key`` is in now, or none."""
        status = self.statuses.get(key)
        record = self.checks.get(key)
        if status is None or record is None or status.pending:
            self._problems.pop(key, None)
            return
        if record.service is not None and status.host_problem:
            self._problems.pop(key, None)  # the host's problem: leave it to the host's rules
            return
        word = state_name(record, status.state)
        if record.service is None and record.host in self.unreachable:
            word = HostState.UNREACHABLE.name
        hard = status.state_type is StateType.HARD
        kept = self._problems.get(key)
        if kept is None or kept.state != word or kept.hard != hard:
            self._problems[key] = problem_named(record, word, hard=hard)

    def state_word(self, key: str) -> str:
        """The target's state as a notification reports it (UNKNOWN when not known)."""
        status = self.statuses.get(key)
        if status is None:
            return "UNKNOWN"
        record = self.checks.get(key)
        return state_name(record, status.state) if record is not None else status.state.name
