"""What remediation should do now: a `Plan` of decisions, from what it knows. Pure.

    Memory (rules, targets, live jobs, attempts, episodes, breakers)
      ├─ plan_results    an action ended ─▶ Verify; a re-check came ─▶ Finish
      ├─ plan_deadlines  no result, no re-check, waited too long ─▶ Verify | Finish | Close
      ├─ plan_matches    rules x problems ─▶ guardrails ─▶ Create | Hold | Breaker; and the
      │                  queued jobs whose target stopped matching ─▶ Close (skipped)
      └─ plan_dispatch   queued jobs ─▶ concurrency ─▶ Dispatch | Close (no longer valid)

The service carries the decisions out (`watchkeeper.remediation.enforcer`) in order and
keeps its memory up to date; nothing here writes, sends or reads a clock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from watchkeeper.document.normalize import CheckRecord
from watchkeeper.jobs.states import JobState
from watchkeeper.remediation import guardrails
from watchkeeper.remediation.guardrails import Attempt, Hold
from watchkeeper.remediation.records import RemediationJob
from watchkeeper.remediation.rules import Problem, Rule, matches
from watchkeeper.remediation.targets import Recheck, Targets
from watchkeeper.results import CheckState

#: Why a target must be left alone now (acknowledged, in downtime, flapping), or None.
Silenced = Callable[[str, float], str | None]
Pair = tuple[str, str]


@dataclass(slots=True)
class Live:
    """A job not final yet, and what the loop needs to drive it."""

    job: RemediationJob
    #: When to try dispatching again after no worker could take it.
    next_try: float = 0.0
    tries: int = 0
    deadline: float = 0.0
    #: Re-check results at or after this time decide the job (verifying).
    verify_after: float = 0.0
    verify_deadline: float = 0.0
    #: Dispatched or verifying when the previous run stopped: whether it ran is unknown.
    restored: bool = False
    #: Since when it waits to be dispatched (queued), for ``queue_ttl``.
    queued_since: float = 0.0


@dataclass(slots=True)
class Episode:
    """A rule's view of one target while it matches: the last refusal audited."""

    noted: Hold | None = None
    reason: str = ""


@dataclass(slots=True)
class Breaker:
    open: bool = False
    count: int = 0


@dataclass(frozen=True, slots=True)
class ActionEnded:
    """A worker answered an action job (``result`` None: it was lost, ``reason`` says why)."""

    job_id: int
    ok: bool | None
    output: str
    reason: str | None
    worker: str | None = None


# --- decisions ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Create:
    """Queue (or, with ``confirm``, hold for an operator) a new job of ``rule`` on ``problem``."""

    rule: Rule
    problem: Problem
    state: JobState
    zone: str
    output: str


@dataclass(frozen=True, slots=True)
class Note:
    """Audit a decision that makes no job (a guardrail's refusal, a breaker)."""

    rule: str
    target: str
    event: str
    output: str


@dataclass(frozen=True, slots=True)
class BreakerTripped:
    """A rule's circuit breaker opened: tell people instead of acting."""

    rule: Rule
    matched: tuple[Problem, ...]


@dataclass(frozen=True, slots=True)
class Verify:
    """The action is over (or lost): re-check the target; its next result decides."""

    job_id: int
    event: str
    output: str
    worker: str | None = None


@dataclass(frozen=True, slots=True)
class Finish:
    """The job's outcome is known: succeeded (re-check OK) or failed."""

    job_id: int
    to: JobState
    event: str
    output: str


@dataclass(frozen=True, slots=True)
class Close:
    """End a job that never ran: skipped, or expired (which people are told of)."""

    job_id: int
    to: JobState
    event: str
    why: str
    author: str | None = None


@dataclass(frozen=True, slots=True)
class Dispatch:
    """Mark the job dispatched and hand it to a worker of its zone."""

    job_id: int


Decision = Create | Note | BreakerTripped | Verify | Finish | Close | Dispatch


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """The decisions of one step, in order, and the rule-side memory after it."""

    decisions: tuple[Decision, ...] = ()
    episodes: dict[Pair, Episode] = field(default_factory=dict)
    #: Every (rule, target) that matches now: closed episodes of others are over.
    matching: set[Pair] = field(default_factory=set)
    breakers: dict[str, Breaker] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """The service-wide limits the planner applies (`RemediationSettings`)."""

    global_concurrency: int
    result_grace: float
    pending_ttl: float
    queue_ttl: float


# --- results and deadlines ----------------------------------------------------------------


def plan_ended(event: ActionEnded, live: Mapping[int, Live]) -> Decision | None:
    """The answer (or loss) of an action job that is still dispatched."""
    found = live.get(event.job_id)
    if found is None or found.job.state is not JobState.DISPATCHED:
        return None
    if event.ok is None:
        return Verify(event.job_id, "action_lost", f"action lost: {event.reason}; it may have run")
    how = "action_succeeded" if event.ok else "action_failed"
    return Verify(event.job_id, how, event.output, event.worker)


def plan_recheck(event: Recheck, live: Mapping[int, Live]) -> list[Decision]:
    """A result of a target being verified, from after its action: the outcome."""
    decisions: list[Decision] = []
    for item in live.values():
        job = item.job
        if job.target != event.key or job.state is not JobState.VERIFYING:
            continue
        if event.at < item.verify_after:
            continue
        if item.restored:
            if event.state is not CheckState.OK and event.at < item.deadline:
                continue  # the action may still be running on its worker: it may yet fix it
            decisions.append(_after_restart(job.id, event))
        elif event.state is CheckState.OK:
            decisions.append(
                Finish(job.id, JobState.SUCCEEDED, "resolved", f"re-check OK: {event.output}")
            )
        else:
            decisions.append(
                Finish(job.id, JobState.FAILED, "failed",
                       f"re-check still {event.state.name}: {event.output}")
            )  # fmt: skip
    return decisions


def _after_restart(job_id: int, event: Recheck) -> Finish:
    """A job the last run left running: its target's first result in this run says how it
    ended, as far as anyone can tell; the action is never run again for it."""
    if event.state is CheckState.OK:
        return Finish(job_id, JobState.SUCCEEDED, "resolved",
                      f"after the manager's restart, re-check OK: {event.output}")  # fmt: skip
    return Finish(
        job_id, JobState.INTERRUPTED, "interrupted",
        f"after the manager's restart the target is still {event.state.name}: "
        f"{event.output}; whether the action ran is unknown, so it is not run again",
    )  # fmt: skip


def plan_deadlines(live: Mapping[int, Live], now: float, limits: Limits) -> list[Decision]:
    """Jobs that waited too long for a result, a re-check, an operator or a worker."""
    decisions: list[Decision] = []
    for item in live.values():
        job = item.job
        if job.state is JobState.DISPATCHED and now > item.deadline + limits.result_grace:
            decisions.append(
                Verify(job.id, "action_lost",
                       "no result from the worker before the deadline; the action may have run")
            )  # fmt: skip
        elif job.state is JobState.VERIFYING and now > item.verify_deadline:
            waited = item.verify_deadline - item.verify_after
            to = JobState.INTERRUPTED if item.restored else JobState.FAILED
            decisions.append(Finish(job.id, to, to.value, f"no re-check result within {waited:g}s"))
        elif job.state is JobState.PENDING and now > job.created_at + limits.pending_ttl:
            why = f"not confirmed within {limits.pending_ttl:g}s"
            decisions.append(Close(job.id, JobState.EXPIRED, "expired", why))
        elif job.state is JobState.QUEUED and now > item.queued_since + limits.queue_ttl:
            why = f"not dispatched within {limits.queue_ttl:g}s"
            decisions.append(Close(job.id, JobState.EXPIRED, "expired", why))
    return decisions


# --- matching -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Memory:
    """What the planner reads of the service (it changes none of it)."""

    rules: Mapping[str, Rule]
    targets: Targets
    live: Mapping[int, Live]
    attempts: Mapping[Pair, Sequence[Attempt]]
    episodes: Mapping[Pair, Episode]
    closed: set[Pair]
    breakers: Mapping[str, Breaker]
    platforms: Mapping[str, Mapping[str, object]]
    silenced: Silenced
    #: Targets of jobs the previous run left, with no result in this run yet: what was
    #: saved of them may be stale (a kill loses the unflushed states), so nothing is
    #: decided for them (no new job, no skip, no dispatch) until a fresh result comes.
    unverified: frozenset[str] = frozenset()


def plan_matches(memory: Memory, now: float) -> Plan:
    """New jobs and refusals for the problems the rules match; skips for recovered ones."""
    problems = memory.targets.problems() if memory.rules else []
    live_for = {(lv.job.rule, lv.job.target) for lv in memory.live.values()}
    matching: set[Pair] = set()
    decisions: list[Decision] = []
    episodes = {pair: Episode(e.noted, e.reason) for pair, e in memory.episodes.items()}
    breakers = {name: Breaker(b.open, b.count) for name, b in memory.breakers.items()}
    for rule in memory.rules.values():
        matched = [p for p in problems if matches(rule, p)]
        decisions.extend(_breaker(rule, matched, breakers))
        for problem in matched:
            pair = (rule.name, problem.key)
            matching.add(pair)
            episode = episodes.setdefault(pair, Episode())
            if pair in live_for or pair in memory.closed or problem.key in memory.unverified:
                continue
            decision = guardrails.decide(
                rule,
                memory.attempts.get(pair, []),
                now,
                silenced=memory.silenced(problem.key, now),
                targets_in_problem=len(matched),
            )
            if decision.act:
                decisions.append(_create(memory, rule, problem))
                episode.noted = None
                continue
            if decision.hold is Hold.CIRCUIT_BREAKER:
                continue  # audited once per trip by `_breaker`
            if decision.hold is not episode.noted or (
                decision.hold is Hold.SILENCED and decision.reason != episode.reason
            ):
                assert decision.hold is not None
                episode.noted, episode.reason = decision.hold, decision.reason
                decisions.append(Note(rule.name, problem.key, decision.hold.value, decision.reason))
    decisions.extend(_recovered(memory, matching))
    return Plan(
        decisions=tuple(decisions),
        episodes={k: e for k, e in episodes.items() if k in matching},
        matching=matching,
        breakers=breakers,
    )


def _breaker(
    rule: Rule, matched: Sequence[Problem], breakers: dict[str, Breaker]
) -> list[Decision]:
    """The breaker's notes when it trips or closes; ``breakers`` is updated."""
    breaker = breakers.setdefault(rule.name, Breaker())
    count = len(matched)
    is_open = guardrails.circuit_open(rule, count)
    breaker.count = count
    if is_open == breaker.open:
        return []
    breaker.open = is_open
    if not is_open:
        return [
            Note(rule.name, "*", "circuit_closed",
                 f"circuit breaker closed ({count} targets, limit {rule.circuit_breaker})")
        ]  # fmt: skip
    return [
        Note(rule.name, "*", "held", f"held: circuit breaker open ({count} targets)"),
        BreakerTripped(rule, tuple(matched)),
    ]


def _create(memory: Memory, rule: Rule, problem: Problem) -> Create:
    record = memory.targets.checks[problem.key]
    state = JobState.PENDING if rule.confirm else JobState.QUEUED
    status = memory.targets.statuses.get(problem.key)
    said = f": {status.output}" if status is not None and status.output else ""
    hardness = "HARD" if problem.hard else "SOFT"
    output = (
        f"matched {problem.trigger} {hardness}{said}; action "
        f"{rule.action_name or rule.action.get('kind')}"
        + ("; waiting for an operator (confirm)" if rule.confirm else "")
    )
    return Create(rule, problem, state, zone_for(rule, record, memory.platforms), output)


def zone_for(rule: Rule, record: CheckRecord, platforms: Mapping[str, Mapping[str, object]]) -> str:
    """Platform actions run in the platform's zone (its credentials are there)."""
    if rule.action.get("kind") == "platform":
        platform = platforms.get(str(rule.action.get("platform")))
        if platform is not None and platform.get("zone"):
            return str(platform["zone"])
    return record.zone


def _recovered(memory: Memory, matching: set[Pair]) -> list[Decision]:
    """Jobs not sent yet whose target no longer matches are not needed any more."""
    targets = memory.targets
    decisions: list[Decision] = []
    for item in memory.live.values():
        job = item.job
        if job.state not in (JobState.PENDING, JobState.QUEUED):
            continue
        if (job.rule, job.target) in matching or job.rule not in memory.rules:
            continue
        if job.target not in targets.checks or job.target not in targets.known:
            continue  # not loaded yet, or removed: the dispatch step decides
        if job.target in memory.unverified:
            continue  # recovered as the last run saved it: a fresh result decides
        why = "the target recovered (or stopped matching) before the action ran"
        decisions.append(Close(job.id, JobState.SKIPPED, "skipped", why, author="system"))
    return decisions


# --- dispatch -----------------------------------------------------------------------------


def plan_dispatch(memory: Memory, now: float, limits: Limits) -> list[Decision]:
    """Queued jobs that may go now, oldest first, within the concurrency limits."""
    running = [
        lv.job for lv in memory.live.values()
        if lv.job.state in (JobState.DISPATCHED, JobState.VERIFYING)
    ]  # fmt: skip
    per_rule: dict[str, int] = {}
    for job in running:
        per_rule[job.rule] = per_rule.get(job.rule, 0) + 1
    total = len(running)
    queued = sorted(
        (lv for lv in memory.live.values() if lv.job.state is JobState.QUEUED),
        key=lambda lv: lv.job.id,
    )
    decisions: list[Decision] = []
    for item in queued:
        job = item.job
        if now < item.next_try or job.target in memory.unverified:
            continue  # a target the last run left a job for waits for a fresh result
        rule = memory.rules.get(job.rule)
        record = memory.targets.checks.get(job.target)
        if rule is None or record is None:
            what = f"rule {job.rule}" if rule is None else f"check {job.target}"
            why = f"{what} is no longer in the configuration"
            decisions.append(Close(job.id, JobState.SKIPPED, "skipped", why, author="system"))
            continue
        breaker = memory.breakers.get(rule.name)
        if breaker is not None and breaker.open:
            continue
        silenced = memory.silenced(job.target, now) if job.decided_by is None else None
        if silenced:
            reason = f"silenced: {silenced}"
            decisions.append(Close(job.id, JobState.SKIPPED, "skipped", reason, author="system"))
            continue
        if guardrails.concurrency_full(
            rule, per_rule.get(rule.name, 0), total, limits.global_concurrency
        ):
            continue
        decisions.append(Dispatch(job.id))
        per_rule[rule.name] = per_rule.get(rule.name, 0) + 1
        total += 1
    return decisions


def closes_episode(job: RemediationJob) -> bool:
    """An operator's skip, or an expiry, ends remediation of this problem."""
    skipped_by_person = job.state is JobState.SKIPPED and job.decided_by not in (None, "system")
    return skipped_by_person or job.state is JobState.EXPIRED
