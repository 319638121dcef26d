"""The deployment stage: check every deployed host, apply what drifted, report, forever.

    every step:  rollout.decide (pure) per deployment ─▶ deploy jobs to a deploy worker of
                 the host's zone (enrolled label deploy=true) ─▶ check mode or apply
                    │
                 result ─▶ the host's status (persisted) ─▶ deploy:HOST evaluated now;
                 an agent key brought back ─▶ pending until an admin approves it

Deploys are idempotent convergence, not one-off changes: a job lost with its worker, or
left in flight by a manager restart, is simply run again (a check first), so no journal
is needed; each host's last status is kept in the store for the plan and the UI. A
rollout halted by ``max_failures`` is kept too, until the deployment changes or an
operator resumes it (`request` with ``apply``).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from watchkeeper import __version__
from watchkeeper.deploy import repository
from watchkeeper.deploy.desired import DesiredDeployment, desired
from watchkeeper.deploy.rollout import (
    Mode,
    Rollout,
    Run,
    Status,
    after_run,
    decide,
    failed_hosts,
)
from watchkeeper.document.normalize import deploy_key
from watchkeeper.errors import WatchkeeperError
from watchkeeper.jobs.payloads import DEFAULT_DEPLOY_TIMEOUT, DEPLOY_REQUIRES, DeployPayload
from watchkeeper.latch import FailureLatch, step_forever
from watchkeeper.logs import NOTICE
from watchkeeper.results import CheckOutcome, CheckState, Metric
from watchkeeper.store.db import Database
from watchkeeper.transport.protocol import Job, Result

logger = logging.getLogger(__name__)

#: Told how a deploy job ended: its result or None and why it was lost, and the worker.
JobDone = Callable[[Result | None, str | None, str | None], None]
#: How soon a target whose job was lost, or found no worker, is tried again.
RESEND_AFTER = 5.0
#: How often pending agent keys are read again (an admin approves in another process).
PENDING_REFRESH = 5.0


class JobRunner(Protocol):
    """What this stage needs of the engine runner (`EngineRunner` has it)."""

    async def submit_action(self, job: Job, done: JobDone) -> bool: ...

    def check_now(self, key: str) -> bool: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class DeploySettings:
    #: Seconds one deploy job may take on the worker (an agent's first install).
    timeout: float = DEFAULT_DEPLOY_TIMEOUT
    #: Beyond a job's deadline, how long the stage waits for a late result.
    result_grace: float = 15.0


@dataclass(frozen=True, slots=True)
class _Ended:
    deployment: str
    host: str
    mode: Mode
    digest: str
    result: Result | None
    reason: str | None
    worker: str | None


class DeployService:
    """Converges the document's deployments; the source of the ``deploy:HOST`` checks."""

    def __init__(
        self,
        db: Database,
        *,
        settings: DeploySettings | None = None,
        clock: Callable[[], float] = time.time,
        version: str = __version__,
    ) -> None:
        self.db = db
        self.settings = settings or DeploySettings()
        self.runner: JobRunner | None = None
        #: The manager's host key fingerprint: the agent's pin (set by the runtime).
        self.fingerprint = ""
        self.version = version
        self.deployments: dict[str, DesiredDeployment] = {}
        self.statuses: dict[tuple[str, str], Status] = {}
        self.rollouts: dict[str, Rollout] = {}
        self.halts: dict[str, str] = {}
        #: Host -> fingerprint of its agent key waiting for approval.
        self.pending: dict[str, str] = {}
        #: Why a target is not running yet (no deploy worker), and when to try again.
        self.waiting: dict[tuple[str, str], tuple[str, float]] = {}
        self._clock = clock
        self._events: deque[Any] = deque()
        self._wake = asyncio.Event()
        self._started = False
        self._pending_read = 0.0
        #: Deployment -> the digests of its targets when last configured.
        self._digests: dict[str, set[str]] = {}
        self._latch = FailureLatch(
            logger,
            "deployments cannot reach the store, will retry: %s",
            "deployments reach the store again",
            action="deploy_store",
        )

    # --- wiring ---------------------------------------------------------------------------

    def attach(self, runner: JobRunner) -> None:
        self.runner = runner

    def configure(
        self, deployments: Iterable[Mapping[str, Any]], hosts: Iterable[Mapping[str, Any]]
    ) -> None:
        """A new configuration's deployments and hosts (from an import, or at start)."""
        self._events.append(("configure", list(deployments), list(hosts)))
        self._wake.set()

    def request(self, deployment: str, host: str | None, mode: Mode) -> list[str]:
        """An operator asks for a check or an apply of one host or all; an apply also
        resumes a halted rollout. The hosts it applies to; `WatchkeeperError` if unknown."""
        found = self.deployments.get(deployment)
        if found is None:
            known = ", ".join(sorted(self.deployments)) or "none"
            raise WatchkeeperError(f"no deployment {deployment!r} (deployments: {known})")
        hosts = [t.host for t in found.targets]
        if host is not None:
            if host not in hosts:
                raise WatchkeeperError(
                    f"deployment {deployment!r} has no host {host!r} (hosts: {', '.join(hosts)})"
                )
            hosts = [host]
        self._events.append(("request", deployment, tuple(hosts), mode))
        self._wake.set()
        return hosts

    # --- what the engine runner asks (inside its loop: memory only) -----------------------

    def check_outcome(self, check: Mapping[str, Any]) -> CheckOutcome | str:
        """The ``deploy:HOST`` check, from the host's last run; a string (why it does not
        run yet) before the first."""
        name, host = str(check.get("deployment")), str(check.get("host"))
        found = self.deployments.get(name)
        target = next((t for t in found.targets if t.host == host), None) if found else None
        if found is None or target is None:
            return "not in the deployments in force yet"
        status = self.statuses.get((name, host), Status())
        waiting = self.waiting.get((name, host))
        if status.mode is None:
            if status.running is not None:
                return "the first check-mode run is under way"
            return waiting[0] if waiting else "waiting for the first check-mode run"
        rollout = self.rollouts.get(name) or found.rollout()
        metrics = (Metric(label="changes", value=float(len(status.changes)), min=0.0),)
        stale = "" if status.digest == target.digest else " (the deployment changed since)"
        if status.ok is False:
            return CheckOutcome(
                state=CheckState.CRITICAL,
                output=f"deploy {status.mode} failed: {status.error}{stale}",
                metrics=metrics,
            )
        if status.mode == "check" and status.changes:
            listed = "; ".join(f"would {c}" for c in status.changes[:5])
            more = f" (+{len(status.changes) - 5} more)" if len(status.changes) > 5 else ""
            if name in self.halts:
                why = f"rollout halted: {self.halts[name]}; resume: watchkeeper deploy apply {name}"
            elif rollout.drift == "report":
                why = f"drift is only reported; apply: watchkeeper deploy apply {name}"
            elif status.streak:
                why = "still not converged after an apply; next try in `every`"
            else:
                why = "repairing"
            return CheckOutcome(
                state=CheckState.WARNING,
                output=f"drift: {listed}{more} ({why}){stale}",
                metrics=metrics,
            )
        if host in self.pending:
            return CheckOutcome(
                state=CheckState.WARNING,
                output=f"agent installed; its key {self.pending[host]} waits for approval: "
                f"watchkeeper worker-key approve {host}",
                metrics=metrics,
            )
        if status.mode == "apply":
            done = f"applied {len(status.changes)} change{'s' if len(status.changes) != 1 else ''}"
            return CheckOutcome(
                state=CheckState.OK, output=f"converged: {done}{stale}", metrics=metrics
            )
        return CheckOutcome(
            state=CheckState.OK,
            output=f"converged: {_summary(found.spec, status)}{stale}",
            metrics=metrics,
        )

    # --- the loop -------------------------------------------------------------------------

    async def start(self) -> None:
        """Load each host's last status and the halted rollouts."""
        self.statuses = await repository.statuses(self.db)
        self.halts = await repository.halts(self.db)
        await self._read_pending(self._clock())
        self._started = True

    async def run(self, interval: float = 0.5) -> None:
        """Steps until cancelled; a store failure is logged once and retried."""
        await step_forever(self.step, self._wake, self._latch, interval)

    async def step(self) -> None:
        """Events first (configuration, requests, results), then the runs due now."""
        if not self._started:
            await self.start()
        now = self._clock()
        while self._events:
            event = self._events.popleft()
            if isinstance(event, _Ended):
                await self._ended(event, now)
            elif event[0] == "configure":
                await self._configure(event[1], event[2], now)
            elif event[0] == "request":
                await self._request(event[1], event[2], event[3], now)
        if now >= self._pending_read + PENDING_REFRESH:
            await self._read_pending(now)
        self._expire(now)
        for deployment in self.deployments.values():
            await self._send(deployment, now)

    async def _configure(
        self, deployments: list[Mapping[str, Any]], hosts: list[Mapping[str, Any]], now: float
    ) -> None:
        self.deployments = desired(
            deployments, hosts, version=self.version, fingerprint=self.fingerprint
        )
        for name, deployment in self.deployments.items():
            old = self.rollouts.get(name)
            fresh = deployment.rollout()
            digests = {t.digest for t in deployment.targets}
            if old is not None and digests == self._digests.get(name):
                fresh = replace(
                    fresh,
                    halted=old.halted,
                    apply_requested=old.apply_requested,
                    check_requested=old.check_requested,
                )
            elif name in self.halts and digests != self._digests.get(name, digests):
                await self._unhalt(name, now, "the deployment changed")
            self._digests[name] = digests
            self.rollouts[name] = replace(fresh, halted=fresh.halted or name in self.halts)
        for name in set(self.rollouts) - set(self.deployments):
            del self.rollouts[name]
        keep = {(t.deployment, t.host) for d in self.deployments.values() for t in d.targets}
        gone = set(self.statuses) - keep  # memory holds every saved row (loaded at start)
        for key in gone:
            del self.statuses[key]
        if gone:  # an import that drops no host costs no write
            await repository.drop_statuses(self.db, keep)

    async def _request(
        self, deployment: str, hosts: tuple[str, ...], mode: Mode, now: float
    ) -> None:
        rollout = self.rollouts.get(deployment)
        if rollout is None:
            return
        if mode == "apply":
            # An apply needs a fresh plan: check first, then apply whatever the policy.
            rollout = replace(
                rollout,
                halted=False,
                apply_requested=rollout.apply_requested | set(hosts),
                check_requested=rollout.check_requested | set(hosts),
            )
            if deployment in self.halts:
                await self._unhalt(deployment, now, "resumed by an operator")
        else:
            rollout = replace(rollout, check_requested=rollout.check_requested | set(hosts))
        self.rollouts[deployment] = rollout

    async def _send(self, deployment: DesiredDeployment, now: float) -> None:
        rollout = self.rollouts.get(deployment.name) or deployment.rollout()
        statuses = {
            t.host: self.statuses.get((deployment.name, t.host), Status())
            for t in deployment.targets
        }
        runs = decide(rollout, deployment.targets, statuses, now)
        for run in runs:
            waiting = self.waiting.get((deployment.name, run.host))
            if waiting is not None and now < waiting[1]:
                continue
            await self._submit(deployment, run, now)

    async def _submit(self, deployment: DesiredDeployment, run: Run, now: float) -> None:
        target = next(t for t in deployment.targets if t.host == run.host)
        host = deployment.hosts[run.host]
        payload = DeployPayload(
            mode=run.mode,
            deployment=dict(deployment.spec),
            host=run.host,
            address=target.address,
            zone=target.zone,
            labels=dict(host.get("labels") or {}),
            agent_version=self.version,
            manager_fingerprint=self.fingerprint,
            timeout=self.settings.timeout,
        )
        job = Job(
            job_id=f"deploy-{secrets.token_hex(8)}",
            zone=target.zone,
            payload=payload,
            deadline=now + self.settings.timeout,
            requires=dict(DEPLOY_REQUIRES),
        )
        key = (deployment.name, run.host)
        ended = self._done(deployment.name, run.host, run.mode, target.digest)
        if self.runner is None or not await self.runner.submit_action(job, ended):
            self.waiting[key] = (
                f"waiting for a deploy worker of zone {target.zone} (a worker key enrolled "
                "with the label deploy=true)",
                now + RESEND_AFTER,
            )
            return
        self.waiting.pop(key, None)
        status = self.statuses.get(key, Status())
        self.statuses[key] = replace(status, running=run.mode, sent_at=now)
        logger.info(
            "deploy %s %s on %s: %s",
            run.mode,
            deployment.name,
            run.host,
            run.reason,
            extra={"action": "deploy_sent", "deployment": deployment.name, "host": run.host},
        )

    def _done(self, deployment: str, host: str, mode: Mode, digest: str) -> JobDone:
        def done(result: Result | None, reason: str | None, worker: str | None) -> None:
            self._events.append(_Ended(deployment, host, mode, digest, result, reason, worker))
            self._wake.set()

        return done

    def _expire(self, now: float) -> None:
        """A job with no answer past its deadline and the grace: run it again later."""
        limit = self.settings.timeout + self.settings.result_grace
        for key, status in self.statuses.items():
            if status.running is not None and now > status.sent_at + limit:
                self.statuses[key] = replace(status, running=None)
                self.waiting[key] = ("the last deploy job got no answer", now + RESEND_AFTER)

    async def _ended(self, event: _Ended, now: float) -> None:
        key = (event.deployment, event.host)
        previous = self.statuses.get(key)
        if previous is None or previous.running is None:
            return  # expired already, or no longer deployed
        if event.result is None:
            self.statuses[key] = replace(previous, running=None)
            self.waiting[key] = (f"the last deploy job was lost: {event.reason}", now)
            return
        data = event.result.data or {}
        ok = event.result.state == CheckState.OK.value and not data.get("error")
        changes = tuple(str(c) for c in data.get("changes") or ())
        streak = previous.streak if previous.digest == event.digest else 0
        if event.mode == "apply" and ok:
            streak += 1
        elif event.mode == "check" and ok and not changes:
            streak = 0
        status = Status(
            digest=event.digest,
            mode=event.mode,
            at=now,
            ok=ok,
            changes=changes,
            error="" if ok else str(data.get("error") or event.result.output),
            error_kind="" if ok else str(data.get("error_kind") or ""),
            agent_version=str(data.get("agent_version") or previous.agent_version),
            agent_key=str(data.get("agent_key") or previous.agent_key),
            streak=streak,
        )
        self.statuses[key] = status
        await repository.save_status(self.db, event.deployment, event.host, status, now=now)
        logger.log(
            NOTICE if changes or not ok else logging.INFO,
            "deploy %s %s on %s: %s",
            event.mode,
            event.deployment,
            event.host,
            event.result.output,
            extra={"action": "deploy_done", "deployment": event.deployment, "host": event.host},
        )
        await self._offer_key(event, status, now)
        await self._rollout_after(event.deployment, event.host, now)
        if self.runner is not None:
            self.runner.check_now(deploy_key(event.host))

    async def _offer_key(self, event: _Ended, status: Status, now: float) -> None:
        deployment = self.deployments.get(event.deployment)
        agent = deployment.spec.get("agent") if deployment else None
        if not status.agent_key or agent is None or agent.get("state", "present") != "present":
            return
        target = next(t for t in deployment.targets if t.host == event.host) if deployment else None
        try:
            offered = await repository.offer_key(
                self.db,
                host=event.host,
                deployment=event.deployment,
                zone=target.zone if target else "",
                public_key=status.agent_key,
                now=now,
            )
        except WatchkeeperError as exc:
            logger.warning("the agent key of %s is not usable: %s", event.host, exc.message)
            return
        if offered is None:
            self.pending.pop(event.host, None)
        elif event.host not in self.pending:
            self.pending[event.host] = offered.fingerprint
            logger.log(
                NOTICE,
                "agent of %s installed; its key %s waits for approval: "
                "watchkeeper worker-key approve %s",
                event.host,
                offered.fingerprint,
                event.host,
                extra={"action": "agent_key_pending", "host": event.host},
            )

    async def _rollout_after(self, name: str, host: str, now: float) -> None:
        deployment = self.deployments.get(name)
        rollout = self.rollouts.get(name)
        if deployment is None or rollout is None:
            return
        statuses = {t.host: self.statuses.get((name, t.host), Status()) for t in deployment.targets}
        updated = after_run(rollout, deployment.targets, statuses, host)
        self.rollouts[name] = updated
        if updated.halted and name not in self.halts:
            failed = failed_hosts(deployment.targets, statuses)
            reason = (
                f"{len(failed)} host{'s' if len(failed) != 1 else ''} failed "
                f"({', '.join(failed)}), more than max_failures {rollout.max_failures}"
            )
            self.halts[name] = reason
            await repository.save_halt(self.db, name, reason, now=now)
            logger.warning(
                "deployment %s: rollout halted: %s",
                name,
                reason,
                extra={"action": "deploy_halted", "deployment": name},
            )
            for target in deployment.targets:
                if self.runner is not None:
                    self.runner.check_now(deploy_key(target.host))
        if not updated.halted and name in self.halts:
            await self._unhalt(name, now, "resumed")

    async def _unhalt(self, name: str, now: float, why: str) -> None:
        self.halts.pop(name, None)
        await repository.save_halt(self.db, name, None, now=now)
        logger.info("deployment %s: rollout %s", name, why, extra={"action": "deploy_resumed"})

    async def _read_pending(self, now: float) -> None:
        self._pending_read = now
        pending = {p.host: p.fingerprint for p in await repository.pending_keys(self.db)}
        changed = set(pending.items()) ^ set(self.pending.items())
        self.pending = pending
        if self.runner is not None:
            for host, _ in changed:
                self.runner.check_now(deploy_key(host))


def _summary(spec: Mapping[str, Any], status: Status) -> str:
    """``agent 0.1.0, 2 files, 1 package in sync``: what the host has, by kind."""
    parts = []
    agent = spec.get("agent")
    if agent is not None and agent.get("state", "present") == "present":
        parts.append(f"agent {status.agent_version or '?'}")
    elif agent is not None:
        parts.append("no agent")
    for kind, one in (
        ("packages", "package"),
        ("files", "file"),
        ("commands", "command"),
        ("services", "service"),
    ):
        n = len(spec.get(kind) or ())
        if n:
            parts.append(f"{n} {one}{'s' if n != 1 else ''}")
    return f"{', '.join(parts)} in sync"
