"""What ``watchkeeper plan DOC`` says of a candidate's deployments, offline. Pure.

Nothing is planned here: a deployment's plan is its check-mode run on each host, which
only a deploy worker can make (it reads the host). What the store keeps of each host's
last run says whether that plan still holds for the candidate: the run saw the digest
the candidate gives the host (`watchkeeper.deploy.desired.digest`), so its findings
stand, or it saw another, so the next check-mode run makes the plan again.

    preview(desired, statuses, halts) -> Preview ─▶ lines(preview, now) / as_dict()
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from watchkeeper.deploy.desired import DesiredDeployment
from watchkeeper.deploy.rollout import Mode, Status, Target

#: What the store tells of a host against the candidate:
#: unchecked  no run saved: the first check-mode run makes its plan
#: changed    the last run saw another digest: its findings no longer hold
#: failed     the last run (under this digest) failed
#: drift      the last check (under this digest) found changes to make
#: in_sync    the last run (under this digest) left nothing to change
Verdict = Literal["unchecked", "changed", "failed", "drift", "in_sync"]
#: Changes listed per host before "(+N more)".
CHANGES_SHOWN = 10


@dataclass(frozen=True, slots=True, kw_only=True)
class HostPlan:
    host: str
    verdict: Verdict
    mode: Mode | None = None
    #: When the last run ended (epoch seconds); 0 when none is saved.
    at: float = 0.0
    changes: tuple[str, ...] = ()
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "verdict": self.verdict,
            "mode": self.mode,
            "at": datetime.fromtimestamp(self.at, UTC).isoformat() if self.at else None,
            "changes": list(self.changes),
            "error": self.error,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class DeploymentPlan:
    name: str
    drift: Literal["repair", "report"]
    max_concurrent: int
    max_failures: int
    #: Why the rollout is halted, as the store keeps it; None when it is not.
    halted: str | None
    hosts: tuple[HostPlan, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "drift": self.drift,
            "max_concurrent": self.max_concurrent,
            "max_failures": self.max_failures,
            "halted": self.halted,
            "hosts": [h.as_dict() for h in self.hosts],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Preview:
    deployments: tuple[DeploymentPlan, ...] = ()
    #: Deployments the store has runs of that the candidate no longer has.
    left: tuple[str, ...] = ()
    #: Why the store could not tell (an old schema), or "".
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "deployments": [d.as_dict() for d in self.deployments],
            "left": list(self.left),
            "note": self.note,
        }


def host_plan(target: Target, status: Status | None) -> HostPlan:
    """One host's verdict from its saved status (None: never run)."""
    if status is None or status.mode is None:
        return HostPlan(host=target.host, verdict="unchecked")
    verdict: Verdict
    if status.digest != target.digest:
        verdict = "changed"
    elif status.ok is False:
        verdict = "failed"
    elif status.in_sync:
        verdict = "in_sync"
    else:
        verdict = "drift"
    return HostPlan(
        host=target.host,
        verdict=verdict,
        mode=status.mode,
        at=status.at,
        changes=status.changes,
        error=status.error,
    )


def preview(
    deployments: Mapping[str, DesiredDeployment],
    statuses: Mapping[tuple[str, str], Status],
    *,
    halts: Mapping[str, str] | None = None,
    note: str = "",
) -> Preview:
    """The candidate's deployments (`desired`) against the saved statuses and halts."""
    halted = halts or {}
    plans = []
    for name, deployment in deployments.items():
        rollout = deployment.rollout()
        plans.append(
            DeploymentPlan(
                name=name,
                drift=rollout.drift,
                max_concurrent=rollout.max_concurrent,
                max_failures=rollout.max_failures,
                halted=halted.get(name),
                hosts=tuple(host_plan(t, statuses.get((name, t.host))) for t in deployment.targets),
            )
        )
    left = sorted({name for name, _ in statuses} - set(deployments))
    return Preview(deployments=tuple(plans), left=tuple(left), note=note)


def ago(seconds: float) -> str:
    """``12 s ago``, ``3 min ago``, ``5 h ago``, ``2 d ago``: how old a run is, roughly."""
    if seconds < 1:
        return "just now"
    for size, unit in ((86_400, "d"), (3_600, "h"), (60, "min")):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{int(seconds)} s ago"


def host_line(found: HostPlan, *, now: float) -> str:
    """``legacy1: would change /etc/motd (checked 3 min ago)``."""
    when = f"{'applied' if found.mode == 'apply' else 'checked'} {ago(now - found.at)}"
    if found.verdict == "unchecked":
        return f"{found.host}: not checked yet: the first check-mode run makes its plan"
    if found.verdict == "changed":
        return (
            f"{found.host}: the deployment changes for this host: the next check-mode run "
            "makes its plan"
        )
    if found.verdict == "failed":
        return f"{found.host}: last run failed: {found.error or 'no reason given'}"
    if found.verdict == "in_sync":
        return f"{found.host}: in sync ({when})"
    shown = "; ".join(f"would {c}" for c in found.changes[:CHANGES_SHOWN])
    more = len(found.changes) - CHANGES_SHOWN
    return f"{found.host}: {shown}{f' (+{more} more)' if more > 0 else ''} ({when})"


def lines(found: Preview, *, now: float) -> list[str]:
    """The lines ``watchkeeper plan`` prints after the infrastructure's; none when the
    candidate has no deployments and the store no runs."""
    if not found.deployments and not found.left:
        return []
    out = ["Deployments, against the last run the store keeps of each host:"]
    if found.note:
        out.append(f"  {found.note}")
    for deployment in found.deployments:
        count = len(deployment.hosts)
        out.append(
            f"  deploy {deployment.name}: {count} host{'' if count == 1 else 's'} "
            f"(drift {deployment.drift}, max_concurrent {deployment.max_concurrent}, "
            f"max_failures {deployment.max_failures})"
        )
        if deployment.halted:
            out.append(
                f"    rollout halted: {deployment.halted}; it applies nothing until the "
                f"deployment changes or: watchkeeper deploy apply {deployment.name}"
            )
        out.extend(f"    {host_line(h, now=now)}" for h in deployment.hosts)
    for name in found.left:
        out.append(
            f"  deploy {name} leaves the document: its hosts keep what it deployed "
            "(nothing is removed)"
        )
    return out
