"""The infrastructure stage as JSON, for the API, the pages and the CLI (`InfraView`).

Every value here is what the manager observed or decided: machines as the platform
reported them (never a credential: providers return observed attributes, and the
worker scrubs its outputs), plans, and the journal of changes with who confirmed them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from watchkeeper.errors import NotFound
from watchkeeper.infra.desired import Desired
from watchkeeper.infra.planner import LIVE_STATES, Action, Knowledge, Plan, Refusal
from watchkeeper.infra.providers.base import Machine
from watchkeeper.infra.service import InfraService
from watchkeeper.jobs.queue import AuditEntry, QueuedJob
from watchkeeper.jobs.states import JobState


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat()


def machine_dict(machine: Machine, *, protected: bool = False) -> dict[str, Any]:
    return {
        "cloud_id": machine.cloud_id,
        "resource": machine.resource,
        "slot": machine.slot,
        "owner": machine.owner,
        "state": machine.state,
        "size": machine.size,
        "image": machine.image,
        "address": machine.address,
        "public_address": machine.public_address,
        "protected": machine.protected or protected,
        "op": machine.op,
    }


def action_dict(action: Action) -> dict[str, Any]:
    return {
        "op": action.op.value,
        "platform": action.platform,
        "resource": action.resource,
        "slot": action.slot,
        "cloud_id": action.cloud_id,
        "size": action.size,
        "reason": action.reason,
        "confirm": action.confirm,
    }


def refusal_dict(refusal: Refusal) -> dict[str, Any]:
    return {
        "platform": refusal.platform,
        "resource": refusal.resource,
        "slot": refusal.slot,
        "cloud_id": refusal.cloud_id,
        "reason": refusal.reason,
    }


def plan_dict(plan: Plan) -> dict[str, Any]:
    return {
        "platform": plan.platform,
        "knowledge": plan.knowledge.value.upper(),
        "reason": plan.reason,
        "summary": plan.summary(),
        "actions": [action_dict(a) for a in plan.actions],
        "refusals": [refusal_dict(r) for r in plan.refusals],
        "lookalikes": [machine_dict(m) for m in plan.lookalikes],
    }


def job_dict(job: QueuedJob) -> dict[str, Any]:
    spec = job.spec
    return {
        "id": job.id,
        "state": job.state.value,
        "op": spec.get("op"),
        "platform": job.meta.get("platform") or spec.get("platform"),
        "resource": job.owner,
        "slot": job.subject,
        "cloud_id": spec.get("cloud_id"),
        "reason": spec.get("reason") or job.meta.get("reason"),
        "op_id": job.wire_id,
        "attempts": job.attempts,
        "worker": job.worker,
        "output": job.output,
        "decided_by": job.decided_by or job.meta.get("author"),
        "created_at": _iso(job.created_at),
        "updated_at": _iso(job.updated_at),
        "finished_at": _iso(job.finished_at),
    }


def audit_dict(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": _iso(entry.at),
        "event": entry.event,
        "outcome": entry.outcome,
        "output": entry.output,
        "worker": entry.worker,
        "author": entry.author,
    }


class InfraView:
    """What the web and the CLI read of, and ask of, the infrastructure stage."""

    def __init__(self, service: InfraService) -> None:
        self.service = service

    # --- reading --------------------------------------------------------------------------

    def platforms(self) -> list[dict[str, Any]]:
        service = self.service
        states = service.platform_states()
        out = []
        for name, platform in service.desired.platforms.items():
            state = states.get(name)
            inventory = state.inventory if state else None
            last = state.last if state else None
            owned = [
                m
                for m in (inventory.machines if inventory else ())
                if m.owner == service.owner and m.state in LIVE_STATES
            ]
            if last is None:
                knowledge = "NEVER"
                reason = (state.waiting if state else "") or "not observed yet"
            else:
                knowledge, reason = last.knowledge.value.upper(), last.reason
            out.append(
                {
                    "name": name,
                    "provider": platform.provider,
                    "zone": platform.zone,
                    "poll": platform.poll,
                    "state": knowledge,
                    "reason": reason,
                    "observed_at": _iso(inventory.observed_at if inventory else None),
                    "good_at": _iso(inventory.good_at if inventory else None),
                    "latency_ms": inventory.latency_ms if inventory else None,
                    "observations": inventory.observations if inventory else 0,
                    "failures": inventory.failures if inventory else 0,
                    "error_rate": inventory.error_rate if inventory else 0.0,
                    "error": inventory.error if inventory else "",
                    "machines": len(owned),
                    "lookalikes": len(last.lookalikes) if last else 0,
                    "failed_changes": state.failures if state else 0,
                    "last_error": state.last_error if state else "",
                    "breaker_until": _iso(state.breaker_until or None) if state else None,
                    "limits": {
                        "max_create": platform.limits.max_create,
                        "max_destroy": platform.limits.max_destroy,
                        "calls_per_second": platform.limits.calls_per_second,
                        "failures": platform.limits.failures,
                    },
                }
            )
        return out

    def resources(self) -> list[dict[str, Any]]:
        service = self.service
        states = service.platform_states()
        protected = service.protected_ids()
        out = []
        for name, resource in service.desired.resources.items():
            state = states.get(resource.platform)
            machines = state.inventory.machines if state and state.inventory else ()
            report = None
            if state is not None and state.last is not None:
                report = next((r for r in state.last.reports if r.resource == name), None)
            check = service.check_outcome({"resource": name, "platform": resource.platform})
            slots = []
            by_slot = {
                m.slot: m
                for m in machines
                if m.owner == service.owner and m.resource == name and m.state in LIVE_STATES
            }
            for slot in resource.slots:
                machine = by_slot.pop(slot, None)
                ids = protected.get(resource.platform, frozenset())
                slots.append(
                    {"slot": slot, "desired": True}
                    | (
                        machine_dict(machine, protected=machine.cloud_id in ids)
                        if machine
                        else {"state": "not provisioned"}
                    )
                )
            for slot, machine in sorted(by_slot.items()):
                ids = protected.get(resource.platform, frozenset())
                slots.append(
                    {"slot": slot, "desired": False}
                    | machine_dict(machine, protected=machine.cloud_id in ids)
                )
            out.append(
                {
                    "name": name,
                    "platform": resource.platform,
                    "count": resource.count,
                    "size": resource.size,
                    "image": resource.image,
                    "update": resource.update,
                    "drift_policy": resource.drift,
                    "protect": resource.protect,
                    "confirm": sorted(resource.confirm),
                    "converged": report.converged if report else 0,
                    "drift": list(report.drift) if report else [],
                    "check": check
                    if isinstance(check, str)
                    else {"state": check.state.name, "output": check.output},
                    "slots": slots,
                }
            )
        return out

    def plans(self) -> list[dict[str, Any]]:
        return [plan_dict(p) for p in self.service.last_plans().values()]

    def hold(self) -> dict[str, Any] | None:
        held = self.service.held
        if held is None:
            return None
        return {
            "reason": held.reason,
            "version": held.version,
            "resources": {n: r.count for n, r in held.desired.resources.items()},
        }

    def preview(self, desired: Desired) -> list[dict[str, Any]]:
        return [plan_dict(p) for p in self.service.preview(desired).values()]

    async def operations(
        self,
        *,
        states: Sequence[JobState] | None = None,
        resource: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], int]:
        journal = self.service.journal
        jobs = await journal.list_jobs(states=states, owner=resource, limit=limit, offset=offset)
        total = await journal.count_jobs(states=states, owner=resource)
        return [job_dict(j) for j in jobs], total

    async def operation(self, job_id: int) -> dict[str, Any]:
        journal = self.service.journal
        job = await journal.get(job_id)
        if job is None:
            raise NotFound(f"no infrastructure operation {job_id}")
        audit = await journal.list_audit(job_id=job_id, limit=1000)
        return job_dict(job) | {"audit": [audit_dict(a) for a in reversed(audit)]}

    def host_machine(self, host: str) -> dict[str, Any] | None:
        """The platform and machine of a slot host (for its page), if it has one."""
        found = self.service.machine_of(host)
        if found is None:
            return None
        platform, machine = found
        ids = self.service.protected_ids().get(platform, frozenset())
        return {"platform": platform} | machine_dict(machine, protected=machine.cloud_id in ids)

    def address(self, host: str) -> str | None:
        return self.service.slot_address(host)

    # --- asking ---------------------------------------------------------------------------

    async def apply(self, only: Sequence[str], author: str) -> list[str]:
        return await self.service.apply_now(only, author=author)

    async def decide(self, job_id: int, *, run: bool, author: str) -> dict[str, Any]:
        return job_dict(await self.service.decide(job_id, run=run, author=author))

    async def unprotect(self, target: str, author: str) -> dict[str, Any]:
        return job_dict(await self.service.unprotect(target, author=author))

    async def adopt(self, target: str, author: str) -> dict[str, Any]:
        return job_dict(await self.service.adopt(target, author=author))

    async def accept(self, platform: str, author: str) -> None:
        await self.service.accept(platform, author=author)

    async def confirm_hold(self, author: str) -> None:
        await self.service.confirm_hold(author)


__all__ = ["InfraView", "Knowledge"]
