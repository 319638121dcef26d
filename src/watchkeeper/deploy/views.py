"""The deployment stage as JSON, for the API, the pages and the CLI (`DeployView`).

Reads come from the stage's memory (its deployments, each host's last run, the halted
rollouts, the agent keys it knows are pending), so a page costs no query; the list of
pending keys and the admin's approve or reject go to the store, where they are kept.
What the stage refuses (an unknown deployment or host, no pending key) is a `NotFound`
naming it, which the web answers with 404.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from watchkeeper import store
from watchkeeper.deploy import repository
from watchkeeper.deploy.desired import DesiredDeployment
from watchkeeper.deploy.rollout import Mode, Status
from watchkeeper.deploy.service import DeployService
from watchkeeper.errors import NotFound, UsageError, WatchkeeperError
from watchkeeper.logs import NOTICE
from watchkeeper.results import CheckOutcome

logger = logging.getLogger(__name__)

#: The notes an approve or reject answers with, besides what the store did.
REJECT_NOTE = (
    "the key is kept as a revoked worker key: a deploy that brings it back does not offer "
    "it again; re-key the host to enrol another"
)


def _iso(epoch: float) -> str | None:
    return datetime.fromtimestamp(epoch, UTC).isoformat() if epoch else None


def enrolment_dict(host: str, key: store.WorkerKey, notes: list[str]) -> dict[str, Any]:
    """What an approve or reject made of a pending key: the worker key it is now."""
    return {
        "host": host,
        "name": key.name,
        "fingerprint": key.fingerprint,
        "zones": list(key.zones),
        "agent_for": key.agent_for,
        "revoked": key.revoked,
        "notes": notes,
    }


class DeployView:
    """What the web and the CLI read of, and ask of, the deployment stage."""

    def __init__(self, service: DeployService, *, clock: Callable[[], float] = time.time) -> None:
        self.service = service
        self._clock = clock

    # --- reading --------------------------------------------------------------------------

    def deployments(self) -> list[dict[str, Any]]:
        """Every deployment in force with its policy, halt and hosts, in document order."""
        return [self._deployment(d) for d in self.service.deployments.values()]

    def deployment(self, name: str) -> dict[str, Any]:
        found = self.service.deployments.get(name)
        if found is None:
            known = ", ".join(sorted(self.service.deployments)) or "none"
            raise NotFound(f"no deployment {name!r} (deployments: {known})")
        return self._deployment(found)

    def _deployment(self, deployment: DesiredDeployment) -> dict[str, Any]:
        service = self.service
        rollout = service.rollouts.get(deployment.name) or deployment.rollout()
        return {
            "name": deployment.name,
            "drift": rollout.drift,
            "every": rollout.every,
            "max_concurrent": rollout.max_concurrent,
            "max_failures": rollout.max_failures,
            "halted": service.halts.get(deployment.name),
            "hosts": [self._host(deployment.name, t.host) for t in deployment.targets],
        }

    def _host(self, name: str, host: str) -> dict[str, Any]:
        service = self.service
        target = next(t for t in service.deployments[name].targets if t.host == host)
        status = service.statuses.get((name, host), Status())
        outcome = service.check_outcome({"deployment": name, "host": host})
        waiting = service.waiting.get((name, host))
        if isinstance(outcome, CheckOutcome):
            state, summary = outcome.state.name, outcome.output
        else:
            state, summary = "PENDING", outcome
        return {
            "host": host,
            "address": target.address,
            "zone": target.zone,
            "state": state,
            "summary": summary,
            "mode": status.mode,
            "at": _iso(status.at),
            "ok": status.ok,
            "changes": list(status.changes),
            "error": status.error,
            "error_kind": status.error_kind,
            "agent_version": status.agent_version,
            "running": status.running,
            "waiting": waiting[0] if waiting else None,
            "pending_key": service.pending.get(host),
        }

    async def pending_keys(self) -> list[dict[str, Any]]:
        """The agent keys deploys brought back that wait for an admin, by host."""
        return [p.as_dict() for p in await repository.pending_keys(self.service.db)]

    # --- asking ---------------------------------------------------------------------------

    def request(self, deployment: str, host: str | None, mode: Mode, author: str) -> list[str]:
        """A check or an apply of one host (or all) now; the hosts it applies to."""
        try:
            hosts = self.service.request(deployment, host, mode)
        except WatchkeeperError as exc:
            raise NotFound(exc.message) from exc
        logger.log(
            NOTICE,
            "deployment %s: %s of %s asked by %s",
            deployment,
            mode,
            ", ".join(hosts) or "no host",
            author,
            extra={"action": "deploy_requested", "deployment": deployment, "author": author},
        )
        return hosts

    async def approve(self, host: str, who: str) -> dict[str, Any]:
        """Enrol ``host``'s pending agent key (its zone, as its agent); the enrolment."""
        try:
            added, notes = await repository.approve(self.service.db, host, now=self._clock())
        except UsageError as exc:
            raise NotFound(exc.message) from exc
        logger.log(
            NOTICE,
            "agent key of %s approved by %s: enrolled %s (%s)",
            host,
            who,
            added.name,
            added.fingerprint,
            extra={"action": "agent_key_approved", "host": host, "author": who}
            | {"key": added.log_context()},
        )
        return enrolment_dict(host, added, notes)

    async def reject(self, host: str, who: str) -> dict[str, Any]:
        """Refuse ``host``'s pending agent key for good; the revoked key it is kept as."""
        db = self.service.db
        try:
            entry = await repository.reject(db, host, now=self._clock())
        except UsageError as exc:
            raise NotFound(exc.message) from exc
        async with db.session() as session:
            kept = await store.find_by_public_key(session, entry.public_key)
        logger.log(
            NOTICE,
            "agent key of %s rejected by %s (%s)",
            host,
            who,
            entry.fingerprint,
            extra={"action": "agent_key_rejected", "host": host, "author": who},
        )
        assert kept is not None, "reject keeps the key as a revoked worker key"
        return enrolment_dict(host, kept, [REJECT_NOTE])


__all__ = ["DeployView", "enrolment_dict"]
