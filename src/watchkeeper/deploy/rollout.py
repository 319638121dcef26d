"""What the deployment stage runs next: a pure decision over targets and their last runs.

Every host of a deployment is a *target*. A target is checked (check mode, the plan)
when it was never checked, when its spec changed since, and every ``every``; a check that
finds changes leads to an apply when the deployment repairs drift (or an operator asked),
and the rollout is not halted. At most ``max_concurrent`` runs of one deployment are in
flight, applies before checks, in the document's host order. A rollout (one spec digest)
halts when more than ``max_failures`` of its hosts failed their last run; halted, it
still checks (a plan harms nothing) but applies nothing until the spec changes or an
operator resumes it.

    decide(rollout, targets, statuses, now) -> [Run(host, mode, reason), ...]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

Mode = Literal["check", "apply"]

#: A failed run is retried this soon at the latest, however long ``every`` is.
RETRY_AFTER = 60.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """One host of a deployment, with the digest of everything its run depends on."""

    deployment: str
    host: str
    address: str
    zone: str
    digest: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Status:
    """What is known of a target from its runs (persisted; empty before the first)."""

    #: The digest the last run saw; a new one means the plan must be made again.
    digest: str = ""
    mode: Mode | None = None
    #: When the last run ended (epoch seconds); 0 before the first.
    at: float = 0.0
    ok: bool | None = None
    #: What the last check would change, or what the last apply changed.
    changes: tuple[str, ...] = ()
    error: str = ""
    #: A short word for the failure: host-key, unreachable, auth, engine, ...
    error_kind: str = ""
    agent_version: str = ""
    #: The agent's public key (OpenSSH one line), from the last run that read it.
    agent_key: str = ""
    #: Applies under this digest since the last check that found nothing to change: an
    #: apply whose verifying check still finds changes is not repeated before ``every``.
    streak: int = 0
    #: In flight: the mode and when it was sent.
    running: Mode | None = None
    sent_at: float = 0.0

    @property
    def in_sync(self) -> bool:
        """The last run, under its digest, left nothing to change."""
        return bool(self.ok) and (self.mode == "apply" or not self.changes)

    def to_json(self) -> dict[str, object]:
        return {
            "digest": self.digest,
            "mode": self.mode,
            "at": self.at,
            "ok": self.ok,
            "changes": list(self.changes),
            "error": self.error,
            "error_kind": self.error_kind,
            "agent_version": self.agent_version,
            "agent_key": self.agent_key,
            "streak": self.streak,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Status:
        mode = data.get("mode")
        ok = data.get("ok")
        changes = data.get("changes")
        return cls(
            digest=str(data.get("digest") or ""),
            mode="apply" if mode == "apply" else "check" if mode == "check" else None,
            at=float(str(data.get("at") or 0.0)),
            ok=ok if isinstance(ok, bool) else None,
            changes=tuple(str(c) for c in changes) if isinstance(changes, list) else (),
            error=str(data.get("error") or ""),
            error_kind=str(data.get("error_kind") or ""),
            agent_version=str(data.get("agent_version") or ""),
            agent_key=str(data.get("agent_key") or ""),
            streak=int(str(data.get("streak") or 0)),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Rollout:
    """One deployment's policy and its rollout so far (under the current digests)."""

    name: str
    drift: Literal["repair", "report"] = "repair"
    every: float = 600.0
    max_concurrent: int = 5
    max_failures: int = 0
    #: Sticky: more than ``max_failures`` hosts failed; applies wait for a resume.
    halted: bool = False
    #: Hosts an operator asked to apply (or check) once, whatever the policy.
    apply_requested: frozenset[str] = field(default_factory=frozenset)
    check_requested: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class Run:
    """A run to send now."""

    host: str
    mode: Mode
    reason: str


def failed_hosts(targets: Sequence[Target], statuses: Mapping[str, Status]) -> list[str]:
    """The targets whose last run, under their current digest, failed."""
    return [
        t.host
        for t in targets
        if (s := statuses.get(t.host)) is not None and s.digest == t.digest and s.ok is False
    ]


def should_halt(
    rollout: Rollout, targets: Sequence[Target], statuses: Mapping[str, Status]
) -> bool:
    """Whether the rollout halts now (or stays halted)."""
    return rollout.halted or len(failed_hosts(targets, statuses)) > rollout.max_failures


def decide(
    rollout: Rollout,
    targets: Sequence[Target],
    statuses: Mapping[str, Status],
    now: float,
) -> list[Run]:
    """The runs to send now, applies first, at most ``max_concurrent`` in flight."""
    blank = Status()
    in_flight = sum(1 for t in targets if statuses.get(t.host, blank).running is not None)
    free = rollout.max_concurrent - in_flight
    if free <= 0:
        return []
    halted = should_halt(rollout, targets, statuses)
    runs: list[Run] = []
    if not halted:
        for target in targets:
            status = statuses.get(target.host, blank)
            if status.running is None and _wants_apply(rollout, target, status, now):
                runs.append(Run(target.host, "apply", _apply_reason(rollout, target, status)))
    for target in targets:
        status = statuses.get(target.host, blank)
        if status.running is not None or any(r.host == target.host for r in runs):
            continue
        reason = _check_reason(rollout, target, status, now)
        if reason:
            runs.append(Run(target.host, "check", reason))
    return runs[:free]


def _wants_apply(rollout: Rollout, target: Target, status: Status, now: float) -> bool:
    if status.digest != target.digest or status.mode != "check" or not status.ok:
        return False
    if target.host in rollout.check_requested:
        return False  # a fresh plan first
    if target.host in rollout.apply_requested:
        return True
    if status.streak and now < status.at + rollout.every:
        return False  # applied, and still not converged: no apply loop, wait for `every`
    return bool(status.changes) and rollout.drift == "repair"


def _apply_reason(rollout: Rollout, target: Target, status: Status) -> str:
    if target.host in rollout.apply_requested and rollout.drift == "report":
        return "an operator asked to apply"
    first = status.changes[0] if status.changes else "nothing to change"
    more = f" (+{len(status.changes) - 1} more)" if len(status.changes) > 1 else ""
    return f"{first}{more}"


def _check_reason(rollout: Rollout, target: Target, status: Status, now: float) -> str:
    if target.host in rollout.check_requested:
        return "an operator asked"
    if status.mode is None:
        return "never checked"
    if status.digest != target.digest:
        return "the deployment changed"
    if status.ok is False:
        return "retry after a failure" if now >= status.at + min(rollout.every, RETRY_AFTER) else ""
    if status.mode == "apply":
        return "verify the apply" if now >= status.at else ""
    return "drift check" if now >= status.at + rollout.every else ""


def after_run(
    rollout: Rollout, targets: Sequence[Target], statuses: Mapping[str, Status], host: str
) -> Rollout:
    """The rollout once ``host``'s run ended: its one-off requests done, maybe halted."""
    status = statuses.get(host, Status())
    applied = status.mode == "apply"
    return replace(
        rollout,
        halted=should_halt(rollout, targets, statuses),
        apply_requested=rollout.apply_requested - {host} if applied else rollout.apply_requested,
        check_requested=rollout.check_requested - {host},
    )
