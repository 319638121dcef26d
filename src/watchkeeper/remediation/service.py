"""The remediation stage: match problems to rules, guard, persist, dispatch, verify, audit.

    EngineRunner ──observe(Observed)──▶ problems, checks, re-check results (in memory)
    AlarmBook ─────metric_alarm(...)──▶ metric problems
    API ──run_pending / skip_pending──▶ conditional store updates
                                        │
    run() every tick: ──────────────────┘
      1. action results and re-check results   dispatched ─▶ verifying ─▶ succeeded | failed
      2. deadlines                             no result, no re-check, pending/queued too long
      3. rules x problems ─▶ guardrails ─▶ new job (queued, or pending with confirm) | audit
      4. queued jobs ─▶ concurrency ─▶ marked dispatched ─▶ submit_action ─▶ worker

A job is written before anything is sent, and marked ``dispatched`` *before* it is handed
to the job server: a crash between the two leaves a job that says it may have run. At
start, queued and pending jobs are loaded and go on; dispatched and verifying ones become
``interrupted`` (audited, notified) and are never sent again: re-running a restart or a
deploy that may already have happened is the unsafe choice, and the guardrails count the
interrupted attempt, so the rule can try again after its cooldown if the problem stays.

`observe` only records in memory (it runs inside the engine loop); every decision, write
and dispatch happens in `run`, one tick at a time (`step`, which tests call directly).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from watchkeeper import store
from watchkeeper.document import models
from watchkeeper.document.normalize import CheckRecord, ObjectRecord
from watchkeeper.engine import CheckStatus, HostState, StateType
from watchkeeper.engine.observed import Observed
from watchkeeper.errors import StoreError, WatchkeeperError
from watchkeeper.notify.notification import Notification, NotificationKind, Notify
from watchkeeper.remediation import guardrails
from watchkeeper.remediation.guardrails import Attempt, Hold
from watchkeeper.remediation.rules import (
    Problem,
    Rule,
    matches,
    parse_rules,
    problem_named,
    state_name,
)
from watchkeeper.results import CheckState
from watchkeeper.store import remediation as rstore
from watchkeeper.store.remediation import AuditEntry, JobState, NewJob, RemediationJob
from watchkeeper.transport.protocol import Job, Result

logger = logging.getLogger(__name__)

#: Told how an action job ended: its result, or None and why it was lost; and the worker
#: that answered (the runner's `watchkeeper.manager.jobs.ActionDone`).
ActionDone = Callable[[Result | None, str | None, str | None], None]
#: Why a target must be left alone now (acknowledged, in downtime, flapping), or None.
Silenced = Callable[[str, float], str | None]


class ActionRunner(Protocol):
    """What the service needs of the engine runner (`EngineRunner` has both)."""

    async def submit_action(self, job: Job, done: ActionDone) -> bool: ...

    def check_now(self, key: str) -> bool: ...


class RemediationError(WatchkeeperError):
    """A remediation job cannot be acted on."""


class RemediationJobNotFound(RemediationError):
    """No remediation job has this id."""


class RemediationJobConflict(RemediationError):
    """The remediation job is not in a state that allows this (already run or skipped)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RemediationSettings:
    """Service-wide limits; the per-rule ones are in the document."""

    #: Actions running at once over every rule.
    global_concurrency: int = guardrails.DEFAULT_GLOBAL_CONCURRENCY
    #: Seconds an action may run on its worker.
    action_timeout: float = 60.0
    #: Seconds past an action's deadline before its result is given up on.
    result_grace: float = 10.0
    #: Seconds to wait for the re-check after an action, beyond the check's own timeout.
    verify_timeout: float = 60.0
    #: Seconds a ``confirm`` job waits for an operator before it expires.
    pending_ttl: float = 24 * 3600.0
    #: Seconds a queued job may wait for a worker or a slot before it expires.
    queue_ttl: float = 3600.0
    #: Seconds between ticks of `run` when nothing wakes it earlier.
    tick_interval: float = 0.5
    #: Cap of the back-off between tries of a job no worker could take.
    retry_cap: float = 30.0


@dataclass(slots=True)
class _Live:
    """A job not final yet, and what the loop needs to drive it."""

    job: RemediationJob
    #: When to try dispatching again after no worker could take it.
    next_try: float = 0.0
    tries: int = 0
    deadline: float = 0.0
    #: Re-check results at or after this time decide the job (verifying).
    verify_after: float = 0.0
    verify_deadline: float = 0.0
    #: Since when it waits to be dispatched (queued), for ``queue_ttl``.
    queued_since: float = 0.0


@dataclass(slots=True)
class _Episode:
    """A rule's view of one target while it matches: the last refusal audited."""

    noted: Hold | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class _ActionEnded:
    job_id: int
    result: Result | None
    reason: str | None
    worker: str | None = None


@dataclass(frozen=True, slots=True)
class _Rechecked:
    key: str
    state: CheckState
    output: str
    at: float


_Event = _ActionEnded | _Rechecked


@dataclass(slots=True)
class _Breaker:
    open: bool = False
    count: int = 0


class RemediationService:
    """The remediation `Downstream`: construct, `attach` the runner, `configure`, `run`.

    ``runner`` may be given later with `attach` (the engine runner takes this service
    as a downstream, so one of them is made first). ``silenced(key, now)`` says why a
    target is to be left alone; ``notify`` queues escalations; ``clock`` is epoch seconds.
    """

    def __init__(
        self,
        db: store.Database,
        runner: ActionRunner | None,
        notify: Notify,
        *,
        silenced: Silenced | None = None,
        settings: RemediationSettings | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.runner = runner
        self._notify = notify
        self._silenced = silenced or (lambda key, now: None)
        self.settings = settings or RemediationSettings()
        self._clock = clock
        self.rules: dict[str, Rule] = {}
        self._platforms: dict[str, dict[str, Any]] = {}
        self._configured = False
        self._checks: dict[str, CheckRecord] = {}
        #: Checks in a problem state (hard or soft), as the engine last said.
        self._statuses: dict[str, CheckStatus] = {}
        #: Checks whose status is known (from the engine, or saved by the last run).
        self._known: set[str] = set()
        self._unreachable: set[str] = set()
        #: (key, metric) -> the metric alarm's state (``OK`` once it cleared).
        self._metrics: dict[tuple[str, str], str] = {}
        self._live: dict[int, _Live] = {}
        self._attempts: dict[tuple[str, str], list[Attempt]] = {}
        self._episodes: dict[tuple[str, str], _Episode] = {}
        self._breakers: dict[str, _Breaker] = {}
        #: (rule, target) whose job an operator skipped or that expired: no new job until
        #: the target stops matching (the next problem is a new one).
        self._closed: set[tuple[str, str]] = set()
        self._events: deque[_Event] = deque()
        self._audits: list[AuditEntry] = []
        self._wake = asyncio.Event()
        self._loaded = False
        self._store_failing = False

    # --- wiring ---------------------------------------------------------------------------

    def attach(self, runner: ActionRunner) -> None:
        self.runner = runner

    def configure(
        self,
        remediations: Iterable[ObjectRecord | models.Remediation],
        actions: Iterable[ObjectRecord | models.Action] = (),
        platforms: Iterable[ObjectRecord | models.Platform] = (),
    ) -> list[str]:
        """Take the running configuration's rules (after every import); returns problems."""
        rules, problems = parse_rules(remediations, actions)
        for problem in problems:
            logger.warning(
                "remediation rule skipped: %s", problem, extra={"action": "remediation_rule"}
            )
        self.rules = {rule.name: rule for rule in rules}
        self._platforms = {}
        for platform in platforms:
            spec = (
                platform.spec
                if isinstance(platform, ObjectRecord)
                else platform.model_dump(mode="json", exclude_none=True)
            )
            self._platforms[str(spec.get("name"))] = dict(spec)
        self._episodes = {k: e for k, e in self._episodes.items() if k[0] in self.rules}
        self._breakers = {k: b for k, b in self._breakers.items() if k in self.rules}
        self._configured = True
        self._wake.set()
        return problems

    # --- what the engine loop and the alarm book call (cheap, in memory) -----------------

    def observe(self, observed: Observed, now: float) -> None:
        """Record checks, problems and re-check results; decisions wait for `step`."""
        if observed.checks is not None:
            self._checks = dict(observed.checks)
            for key in [k for k in self._statuses if k not in self._checks]:
                del self._statuses[key]
            self._known &= self._checks.keys()
        for key in observed.removed:
            self._checks.pop(key, None)
            self._statuses.pop(key, None)
            self._known.discard(key)
        for host in observed.hosts:
            if host.state is HostState.UNREACHABLE:
                self._unreachable.add(host.host)
            else:
                self._unreachable.discard(host.host)
        for status in observed.statuses:
            self._known.add(status.key)
            if status.is_problem:
                self._statuses[status.key] = status
            else:
                self._statuses.pop(status.key, None)
        if self._live:
            verifying = {
                live.job.target
                for live in self._live.values()
                if live.job.state is JobState.VERIFYING
            }
            for result in observed.results:
                if result.key in verifying:
                    self._events.append(
                        _Rechecked(
                            result.key, result.outcome.state, result.outcome.output, result.at
                        )
                    )
        if observed:
            self._wake.set()

    def metric_alarm(self, key: str, metric: str, state: str, now: float) -> None:
        """A metric alarm of check ``key`` opened or changed (``state`` CRITICAL...) or
        cleared (``OK``); rules with ``when.metric`` act on it."""
        self._metrics[(key, metric)] = state.upper()
        self._wake.set()

    # --- the operator's API ---------------------------------------------------------------

    async def run_pending(self, job_id: int, author: str) -> RemediationJob:
        """Approve a pending job: it is queued and runs once a worker and a slot are free."""
        return await self._operator_move(
            job_id, "run", [JobState.PENDING], JobState.QUEUED, "approved",
            f"run by {author}", author, output=None,
        )  # fmt: skip

    async def skip_pending(self, job_id: int, author: str, reason: str = "") -> RemediationJob:
        """Skip a pending (or still queued) job: it never runs."""
        why = f"skipped by {author}" + (f": {reason}" if reason else "")
        return await self._operator_move(
            job_id, "skip", [JobState.PENDING, JobState.QUEUED], JobState.SKIPPED, "skipped",
            why, author, output=why,
        )  # fmt: skip

    async def _operator_move(
        self,
        job_id: int,
        verb: str,
        from_states: list[JobState],
        to: JobState,
        event: str,
        why: str,
        author: str,
        *,
        output: str | None,
    ) -> RemediationJob:
        job = await rstore.transition(
            self.db,
            job_id,
            from_states=from_states,
            to=to,
            now=self._clock(),
            event=event,
            audit_output=why,
            output=output,
            author=author,
        )
        if job is None:
            await self._not_movable(job_id, verb)
        assert job is not None
        self._track(job)
        self._wake.set()
        return job

    async def _not_movable(self, job_id: int, verb: str) -> None:
        async with self.db.session() as session:
            current = await rstore.get_job(session, job_id)
        if current is None:
            raise RemediationJobNotFound(f"no remediation job {job_id}")
        raise RemediationJobConflict(
            f"cannot {verb} remediation job {job_id}: it is {current.state.value}"
        )

    # --- the loop -------------------------------------------------------------------------

    async def run(self) -> None:
        """Load what a previous run left, then tick until cancelled."""
        while not self._loaded:
            try:
                await self.load()
            except StoreError as exc:
                logger.warning("cannot load remediation jobs, will retry: %s", exc.message)
                await asyncio.sleep(self.settings.tick_interval * 4)
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.tick_interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.step()
            except StoreError as exc:
                if not self._store_failing:
                    logger.warning(
                        "remediation cannot use the store, will retry: %s",
                        exc.message,
                        extra={"action": "remediation_store_failing"},
                    )
                self._store_failing = True
            else:
                if self._store_failing:
                    logger.info("remediation store recovered")
                self._store_failing = False

    async def load(self) -> None:
        """Take up the jobs a previous run left: queued and pending go on, the rest stop."""
        now = self._clock()
        async with self.db.session() as session:
            live = await rstore.list_jobs(session, states=[JobState(s) for s in rstore.LIVE_STATES])
            window = max((r.window for r in self.rules.values()), default=0.0)
            history = await rstore.attempts_since(session, now - max(window, 24 * 3600.0))
            recent = await rstore.list_jobs(session, limit=5000)
            saved = await store.list_check_states(session)
        # The engine's first turn names the checks but not their saved statuses; take them
        # from the store, unless the engine told us newer ones meanwhile.
        for key, status in saved.items():
            if key not in self._known:
                self._known.add(key)
                if status.is_problem:
                    self._statuses[key] = status
        seen: set[tuple[str, str]] = set()
        for job in recent:  # newest first: the last word on each rule and target
            pair = (job.rule, job.target)
            if pair not in seen:
                seen.add(pair)
                if _closes(job):
                    self._closed.add(pair)
        for job in history:
            if job.dispatched_at is None or not job.state.final:
                continue  # live ones are taken up below
            self._attempts.setdefault((job.rule, job.target), []).append(
                Attempt(job.dispatched_at, job.finished_at or job.updated_at)
            )
        for job in sorted(live, key=lambda j: j.id):
            if job.state in (JobState.QUEUED, JobState.PENDING):
                self._track(job)
                continue
            was = "running" if job.state is JobState.DISPATCHED else "being verified"
            stopped = await rstore.transition(
                self.db,
                job.id,
                from_states=[job.state],
                to=JobState.INTERRUPTED,
                now=now,
                event="interrupted",
                audit_output=(
                    f"the manager stopped while the action was {was}; it may have run, "
                    "so it is not run again"
                ),
            )
            if stopped is None:
                continue
            started = job.dispatched_at or job.updated_at
            self._attempts.setdefault((job.rule, job.target), []).append(Attempt(started, now))
            self._escalate(stopped, now, "interrupted by a manager restart; outcome unknown")
        self._loaded = True
        self._wake.set()

    async def step(self, now: float | None = None) -> None:
        """One tick: results, deadlines, new matches, dispatch; then write the audit."""
        if not self._loaded:
            return  # what a previous run left must be known before anything new is decided
        now = self._clock() if now is None else now
        try:
            while self._events:
                event = self._events.popleft()
                if isinstance(event, _ActionEnded):
                    await self._action_ended(event, now)
                else:
                    await self._rechecked(event, now)
            await self._deadlines(now)
            if self._configured:
                await self._evaluate(now)
                await self._dispatch(now)
        finally:
            await self._flush_audit()

    # --- results --------------------------------------------------------------------------

    def _done(self, job_id: int) -> ActionDone:
        def done(result: Result | None, reason: str | None, worker: str | None) -> None:
            self._events.append(_ActionEnded(job_id, result, reason, worker))
            self._wake.set()

        return done

    async def _action_ended(self, event: _ActionEnded, now: float) -> None:
        live = self._live.get(event.job_id)
        if live is None or live.job.state is not JobState.DISPATCHED:
            return
        result = event.result
        if result is None:
            how, output = "action_lost", f"action lost: {event.reason}; it may have run"
        else:
            text = result.output + (f"\n{result.long_output}" if result.long_output else "")
            ok = CheckState(result.state) is CheckState.OK
            how, output = ("action_succeeded" if ok else "action_failed"), text
        await self._verify(live, now, how, output, worker=event.worker)

    async def _verify(
        self, live: _Live, now: float, how: str, output: str, *, worker: str | None = None
    ) -> None:
        """The action is over (or lost): re-check the target; its next result decides."""
        job = live.job
        record = self._checks.get(job.target)
        moved = await rstore.transition(
            self.db,
            job.id,
            from_states=[JobState.DISPATCHED],
            to=JobState.VERIFYING,
            now=now,
            event=how,
            audit_output=output,
            output=output,
            worker=worker,
        )
        if moved is None:
            return
        self._track(moved)
        live = self._live[job.id]
        live.verify_after = now
        timeout = float(record.spec.get("timeout") or 0.0) if record is not None else 0.0
        live.verify_deadline = now + timeout + self.settings.verify_timeout
        if self.runner is None or not self.runner.check_now(job.target):
            await self._finish(
                live, now, JobState.FAILED, "failed",
                f"{job.target} is no longer checked: the action's effect cannot be verified",
            )  # fmt: skip

    async def _rechecked(self, event: _Rechecked, now: float) -> None:
        for live in list(self._live.values()):
            job = live.job
            if (
                job.target != event.key
                or job.state is not JobState.VERIFYING
                or event.at < live.verify_after
            ):
                continue
            if event.state is CheckState.OK:
                await self._finish(
                    live, now, JobState.SUCCEEDED, "resolved", f"re-check OK: {event.output}"
                )
            else:
                await self._finish(
                    live, now, JobState.FAILED, "failed",
                    f"re-check still {event.state.name}: {event.output}",
                )  # fmt: skip

    async def _finish(self, live: _Live, now: float, to: JobState, event: str, output: str) -> None:
        job = live.job
        action_output = job.output or ""
        finished = await rstore.transition(
            self.db,
            job.id,
            from_states=[job.state],
            to=to,
            now=now,
            event=event,
            audit_output=output,
            output=f"{action_output}\n{output}" if action_output else output,
        )
        if finished is None:
            return
        self._end_attempt(job, now)
        self._track(finished)
        if to is JobState.FAILED:
            self._escalate(finished, now, output)
        level = logging.INFO if to is JobState.SUCCEEDED else logging.WARNING
        logger.log(
            level,
            "remediation %s of %s %s: %s",
            job.rule,
            job.target,
            to.value,
            output,
            extra={"action": f"remediation_{to.value}", "job": job.id},
        )

    def _end_attempt(self, job: RemediationJob, now: float) -> None:
        attempts = self._attempts.get((job.rule, job.target), [])
        for i, attempt in enumerate(attempts):
            if attempt.ended is None:
                attempts[i] = replace(attempt, ended=now)
                return

    # --- deadlines ------------------------------------------------------------------------

    async def _deadlines(self, now: float) -> None:
        s = self.settings
        for live in list(self._live.values()):
            job = live.job
            if job.state is JobState.DISPATCHED and now > live.deadline + s.result_grace:
                await self._verify(
                    live, now, "action_lost",
                    "no result from the worker before the deadline; the action may have run",
                )  # fmt: skip
            elif job.state is JobState.VERIFYING and now > live.verify_deadline:
                await self._finish(
                    live, now, JobState.FAILED, "failed",
                    f"no re-check result within {live.verify_deadline - live.verify_after:g}s",
                )  # fmt: skip
            elif job.state is JobState.PENDING and now > job.created_at + s.pending_ttl:
                await self._expire(live, now, f"not confirmed within {s.pending_ttl:g}s")
            elif job.state is JobState.QUEUED and now > live.queued_since + s.queue_ttl:
                await self._expire(live, now, f"not dispatched within {s.queue_ttl:g}s")

    async def _expire(self, live: _Live, now: float, why: str) -> None:
        expired = await self._close(live, now, JobState.EXPIRED, "expired", why)
        if expired is not None:
            self._escalate(expired, now, f"expired: {why}")

    async def _close(
        self, live: _Live, now: float, to: JobState, event: str, why: str, author: str | None = None
    ) -> RemediationJob | None:
        """End a job that never ran (expired, skipped), from whatever state it is in now."""
        closed = await rstore.transition(
            self.db,
            live.job.id,
            from_states=[live.job.state],
            to=to,
            now=now,
            event=event,
            audit_output=why,
            output=why,
            author=author,
        )
        if closed is not None:
            self._track(closed)
        return closed

    # --- matching and guardrails ----------------------------------------------------------

    def problems(self) -> list[Problem]:
        """Every target now in a problem state, and every open metric alarm."""
        out: list[Problem] = []
        for key, status in self._statuses.items():
            record = self._checks.get(key)
            if record is None or status.pending:
                continue
            if record.service is not None and status.host_problem:
                continue  # the host's problem: leave it to the host's own rules
            word = state_name(record, status.state)
            if record.service is None and record.host in self._unreachable:
                word = HostState.UNREACHABLE.name
            out.append(problem_named(record, word, hard=status.state_type is StateType.HARD))
        for (key, metric), state in self._metrics.items():
            record = self._checks.get(key)
            if record is not None and state != "OK":
                out.append(problem_named(record, state, hard=True, metric=metric))
        return out

    async def _evaluate(self, now: float) -> None:
        problems = self.problems()
        live_for = {(lv.job.rule, lv.job.target) for lv in self._live.values()}
        matching_now: set[tuple[str, str]] = set()
        for rule in self.rules.values():
            matched = [p for p in problems if matches(rule, p)]
            self._breaker(rule, matched, now)
            for problem in matched:
                pair = (rule.name, problem.key)
                matching_now.add(pair)
                episode = self._episodes.setdefault(pair, _Episode())
                if pair in live_for or pair in self._closed:
                    continue
                attempts = self._attempts.get(pair, [])
                decision = guardrails.decide(
                    rule,
                    attempts,
                    now,
                    silenced=self._silenced(problem.key, now),
                    targets_in_problem=len(matched),
                )
                if decision.act:
                    await self._create(rule, problem, now)
                    episode.noted = None
                    continue
                if decision.hold is Hold.CIRCUIT_BREAKER:
                    continue  # audited once per trip by `_breaker`
                if decision.hold is not episode.noted or (
                    decision.hold is Hold.SILENCED and decision.reason != episode.reason
                ):
                    episode.noted, episode.reason = decision.hold, decision.reason
                    assert decision.hold is not None
                    self._audit(now, rule.name, problem.key, decision.hold.value, decision.reason)
        self._episodes = {k: e for k, e in self._episodes.items() if k in matching_now}
        self._closed &= matching_now
        await self._skip_recovered(matching_now, now)
        for pair, attempts in list(self._attempts.items()):
            owner = self.rules.get(pair[0])
            kept = guardrails.prune(attempts, owner, now) if owner is not None else []
            if kept:
                self._attempts[pair] = kept
            else:
                del self._attempts[pair]

    def _breaker(self, rule: Rule, matched: Sequence[Problem], now: float) -> None:
        breaker = self._breakers.setdefault(rule.name, _Breaker())
        count = len(matched)
        is_open = guardrails.circuit_open(rule, count)
        breaker.count = count
        if is_open == breaker.open:
            return
        breaker.open = is_open
        if not is_open:
            self._audit(
                now, rule.name, "*", "circuit_closed",
                f"circuit breaker closed ({count} targets, limit {rule.circuit_breaker})",
            )  # fmt: skip
            return
        reason = f"held: circuit breaker open ({count} targets)"
        self._audit(now, rule.name, "*", "held", reason)
        shown = [p.key for p in matched[:20]]
        channels: list[str] = list(rule.notifications)
        for problem in matched:
            record = self._checks.get(problem.key)
            if record is not None:
                channels.extend(str(c) for c in record.spec.get("notifications") or ())
        first = matched[0]
        self._notify(
            Notification(
                kind=NotificationKind.REMEDIATION,
                key=f"remediation:{rule.name}",
                host=first.host,
                service=None,
                state="HELD",
                output=(
                    f"remediation {rule.name} holds back: {count} targets match at once "
                    f"(circuit breaker {rule.circuit_breaker}); not acting on "
                    + ", ".join(shown)
                    + (f" and {count - len(shown)} more" if count > len(shown) else "")
                ),
                at=now,
                channels=tuple(dict.fromkeys(channels)),
                details={"rule": rule.name, "targets": shown, "count": count},
            )
        )
        logger.warning(
            "remediation %s circuit breaker open: %d targets",
            rule.name,
            count,
            extra={"action": "remediation_circuit_open"},
        )

    async def _create(self, rule: Rule, problem: Problem, now: float) -> None:
        record = self._checks[problem.key]
        state = JobState.PENDING if rule.confirm else JobState.QUEUED
        status = self._statuses.get(problem.key)
        said = f": {status.output}" if status is not None and status.output else ""
        hardness = "HARD" if problem.hard else "SOFT"
        job = await rstore.create_job(
            self.db,
            NewJob(
                rule=rule.name,
                target=problem.key,
                host=record.host,
                service=record.service,
                zone=self._zone_for(rule, record),
                action=rule.action,
                trigger=problem.trigger,
                state=state,
            ),
            now=now,
            output=(
                f"matched {problem.trigger} {hardness}{said}; action "
                f"{rule.action_name or rule.action.get('kind')}"
                + ("; waiting for an operator (confirm)" if rule.confirm else "")
            ),
        )
        self._track(job)
        logger.info(
            "remediation %s %s for %s",
            rule.name,
            state.value,
            problem.key,
            extra={"action": "remediation_queued", "job": job.id},
        )

    def _zone_for(self, rule: Rule, record: CheckRecord) -> str:
        """Platform actions run in the platform's zone (its credentials are there)."""
        if rule.action.get("kind") == "platform":
            platform = self._platforms.get(str(rule.action.get("platform")))
            if platform is not None and platform.get("zone"):
                return str(platform["zone"])
        return record.zone

    async def _skip_recovered(self, matching: set[tuple[str, str]], now: float) -> None:
        """Jobs not sent yet whose target no longer matches are not needed any more."""
        for live in list(self._live.values()):
            job = live.job
            if job.state not in (JobState.PENDING, JobState.QUEUED):
                continue
            if (job.rule, job.target) in matching or job.rule not in self.rules:
                continue
            if job.target not in self._checks or job.target not in self._known:
                continue  # not loaded yet, or removed: the dispatch step decides
            why = "the target recovered (or stopped matching) before the action ran"
            skipped = await rstore.transition(
                self.db,
                job.id,
                from_states=[job.state],
                to=JobState.SKIPPED,
                now=now,
                event="skipped",
                audit_output=why,
                output=why,
                author="system",
            )
            if skipped is not None:
                self._track(skipped)

    # --- dispatch -------------------------------------------------------------------------

    async def _dispatch(self, now: float) -> None:
        if self.runner is None:
            return
        running = [
            lv.job for lv in self._live.values()
            if lv.job.state in (JobState.DISPATCHED, JobState.VERIFYING)
        ]  # fmt: skip
        per_rule: dict[str, int] = {}
        for job in running:
            per_rule[job.rule] = per_rule.get(job.rule, 0) + 1
        total = len(running)
        queued = sorted(
            (lv for lv in self._live.values() if lv.job.state is JobState.QUEUED),
            key=lambda lv: lv.job.id,
        )
        for live in queued:
            job = live.job
            if now < live.next_try:
                continue
            rule = self.rules.get(job.rule)
            record = self._checks.get(job.target)
            if rule is None or record is None:
                what = f"rule {job.rule}" if rule is None else f"check {job.target}"
                await self._skip(live, now, f"{what} is no longer in the configuration")
                continue
            if self._breakers.get(rule.name, _Breaker()).open:
                continue
            if job.decided_by is None and (why := self._silenced(job.target, now)):
                await self._skip(live, now, f"silenced: {why}")
                continue
            if guardrails.concurrency_full(
                rule, per_rule.get(rule.name, 0), total, self.settings.global_concurrency
            ):
                continue
            if await self._send(live, rule, record, now):
                per_rule[rule.name] = per_rule.get(rule.name, 0) + 1
                total += 1

    async def _send(self, live: _Live, rule: Rule, record: CheckRecord, now: float) -> bool:
        """Mark the job dispatched, then hand it over; put it back if nobody took it."""
        assert self.runner is not None
        job = live.job
        marked = await rstore.transition(
            self.db,
            job.id,
            from_states=[JobState.QUEUED],
            to=JobState.DISPATCHED,
            now=now,
            event="dispatched",
            audit_output=None,  # written once a worker took it (see below)
            dispatched=True,
        )
        if marked is None:
            return False
        self._track(marked)
        live = self._live[job.id]
        timeout = self.settings.action_timeout
        live.deadline = now + timeout + 5.0
        spec: dict[str, Any] = {
            "action": job.action,
            "address": str(record.spec.get("address") or ""),
            "host": job.host,
            "service": job.service,
            "timeout": timeout,
        }
        if job.action.get("kind") == "platform":
            platform = self._platforms.get(str(job.action.get("platform")))
            if platform is not None:
                spec["platform"] = platform
        wire = Job(
            job_id=job.wire_id,
            check=f"remediation:{job.id}",
            zone=job.zone,
            spec=spec,
            deadline=live.deadline,
            token=0,
            once=True,  # an action that may have run is never re-sent to a peer
        )
        # Counted before the await: an exception there leaves a job that may have gone.
        pair = (job.rule, job.target)
        self._attempts.setdefault(pair, []).append(Attempt(now))
        if not await self.runner.submit_action(wire, self._done(job.id)):
            self._attempts[pair].pop()
            back = await rstore.transition(
                self.db,
                job.id,
                from_states=[JobState.DISPATCHED],
                to=JobState.QUEUED,
                now=now,
                event="requeued",
                audit_output=None,  # no row per retry: the queued job says it waits
                dispatched=False,
            )
            if back is not None:
                self._track(back)
                requeued = self._live[job.id]
                requeued.tries += 1
                requeued.next_try = now + min(self.settings.retry_cap, 0.5 * 2**requeued.tries)
                if requeued.tries == 1:
                    logger.info(
                        "remediation %s of %s waits for a worker of zone %s",
                        job.rule,
                        job.target,
                        job.zone,
                        extra={"action": "remediation_waiting", "job": job.id},
                    )
            return False
        self._audit(
            now, job.rule, job.target, "dispatched",
            f"sent to a worker of zone {job.zone} as job {job.wire_id}", job=marked,
        )  # fmt: skip
        logger.info(
            "remediation %s of %s dispatched to zone %s",
            job.rule,
            job.target,
            job.zone,
            extra={"action": "remediation_dispatched", "job": job.id},
        )
        return True

    async def _skip(self, live: _Live, now: float, why: str) -> None:
        await self._close(live, now, JobState.SKIPPED, "skipped", why, author="system")

    # --- bookkeeping ----------------------------------------------------------------------

    def _track(self, job: RemediationJob) -> None:
        """Mirror a job's stored state in memory; final jobs leave."""
        if job.state.final:
            self._live.pop(job.id, None)
            if _closes(job):
                self._closed.add((job.rule, job.target))
            return
        live = self._live.get(job.id)
        if live is None:
            live = self._live[job.id] = _Live(job)
        live.job = job
        if job.state is JobState.QUEUED and not live.queued_since:
            live.queued_since = job.updated_at

    def _audit(
        self,
        now: float,
        rule: str,
        target: str,
        event: str,
        output: str,
        *,
        job: RemediationJob | None = None,
    ) -> None:
        self._audits.append(
            AuditEntry(
                at=now,
                rule=rule,
                target=target,
                event=event,
                output=output,
                job_id=None if job is None else job.id,
                outcome=None if job is None else job.state.value,
                worker=None if job is None else job.worker,
            )
        )

    async def _flush_audit(self) -> None:
        if not self._audits:
            return
        batch, self._audits = self._audits, []
        try:
            await rstore.record_audit(self.db, batch)
        except StoreError:
            self._audits = batch + self._audits
            raise

    def _escalate(self, job: RemediationJob, now: float, why: str) -> None:
        """A failure (or an outcome nobody knows) goes to people: the rule's channels and
        the check's."""
        rule = self.rules.get(job.rule)
        record = self._checks.get(job.target)
        channels: list[str] = list(rule.notifications) if rule is not None else []
        if record is not None:
            channels.extend(str(c) for c in record.spec.get("notifications") or ())
        status = self._statuses.get(job.target)
        if status is None:
            state = "UNKNOWN"
        elif record is not None:
            state = state_name(record, status.state)
        else:
            state = status.state.name
        attempts = self._attempts.get((job.rule, job.target), [])
        further = ""
        if rule is not None:
            decision = guardrails.check_attempts(rule, attempts, now)
            further = (
                "no further attempts: " + decision.reason
                if decision.hold is Hold.MAX_ATTEMPTS
                else f"a further attempt may run after the cooldown ({rule.cooldown:g}s)"
            )
        self._notify(
            Notification(
                kind=NotificationKind.REMEDIATION,
                key=job.target,
                host=job.host,
                service=job.service,
                state=state,
                output=f"remediation {job.rule} {job.state.value}: {why}",
                at=now,
                channels=tuple(dict.fromkeys(channels)),
                details={
                    "rule": job.rule,
                    "job_id": job.id,
                    "job_state": job.state.value,
                    "action_output": job.output,
                    "attempts_in_window": len(attempts),
                    "further": further,
                },
            )
        )

    # --- for the API and tests ------------------------------------------------------------

    @property
    def live_jobs(self) -> Mapping[int, RemediationJob]:
        """Jobs not final yet, by id."""
        return {job_id: live.job for job_id, live in self._live.items()}

    def breaker_open(self, rule: str) -> bool:
        return self._breakers.get(rule, _Breaker()).open


def _closes(job: RemediationJob) -> bool:
    """An operator's skip, or an expiry, ends remediation of this problem."""
    skipped_by_person = job.state is JobState.SKIPPED and job.decided_by not in (None, "system")
    return skipped_by_person or job.state is JobState.EXPIRED


__all__ = [
    "ActionDone",
    "ActionRunner",
    "RemediationError",
    "RemediationJobConflict",
    "RemediationJobNotFound",
    "RemediationService",
    "RemediationSettings",
    "Silenced",
]
