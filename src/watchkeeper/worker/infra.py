"""How a worker of a platform's zone carries out an infra job: one provider call.

    observe   OK "observed N machines", data {"machines": [...]}; UNKNOWN when it failed
    create    OK, data {"machine": ...}; CRITICAL with the platform's error code
    destroy, start, stop, reboot, protect, unprotect
              on one machine, only after a fresh look shows it carries our owner tag
    resize    stop (if running), wait until stopped, set the size, start again

The worker is the last guard: it refuses to change a machine that is not ours, and to
destroy one that is protected, whatever the job says. The platform's credentials are
resolved by the provider here and never leave: outputs and data are scrubbed of the
secret's value before the result is sent.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from watchkeeper.errors import SecretError
from watchkeeper.infra.providers.base import (
    TAG_OWNER,
    TAG_RESOURCE,
    TAG_SLOT,
    Machine,
    MachineSpec,
    Provider,
    ProviderError,
)
from watchkeeper.infra.providers.cache import ProviderCache
from watchkeeper.jobs.payloads import InfraPayload
from watchkeeper.plugins import PROVIDERS, UnknownKind
from watchkeeper.results import CheckOutcome, CheckState
from watchkeeper.secrets import resolve_secret

#: Seconds between looks while a resize waits for its machine to stop.
STOP_POLL = 0.5


class InfraRunner:
    """Runs infra jobs with one provider per platform (`ProviderCache`)."""

    def __init__(
        self, providers: ProviderCache | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.providers = providers or ProviderCache()
        self._clock = clock

    async def run(self, job: InfraPayload) -> CheckOutcome:
        started = self._clock()
        try:
            provider = await self.providers.get(job.platform)
        except UnknownKind:
            known = ", ".join(PROVIDERS.kinds()) or "none"
            return _scrub(
                job,
                _outcome(
                    CheckState.CRITICAL if job.op != "observe" else CheckState.UNKNOWN,
                    f"INFRA {job.op.upper()} FAILED - no provider "
                    f"{job.platform.get('provider')!r} on this worker (installed: {known})",
                    {"error": "no provider", "code": "UnknownProvider"},
                ),
            )
        needed = "observe" if job.op in ("observe",) else _CAPABILITY.get(job.op, job.op)
        if needed not in set(getattr(provider, "capabilities", ())):
            return _outcome(
                CheckState.UNKNOWN if job.op == "observe" else CheckState.CRITICAL,
                f"INFRA {job.op.upper()} FAILED - provider {job.platform.get('provider')!r} "
                f"cannot {job.op} machines",
                {"error": "unsupported", "code": "Unsupported"},
            )
        try:
            outcome = await self._run(provider, job)
        except ProviderError as exc:
            state = CheckState.UNKNOWN if job.op == "observe" else CheckState.CRITICAL
            code = f" ({exc.code})" if exc.code else ""
            outcome = _outcome(
                state,
                f"INFRA {job.op.upper()} FAILED{code} - {exc}",
                {"error": str(exc), "code": exc.code, "retryable": exc.retryable},
            )
        except SecretError as exc:
            outcome = _outcome(
                CheckState.UNKNOWN if job.op == "observe" else CheckState.CRITICAL,
                f"INFRA {job.op.upper()} FAILED - {exc}",
                {"error": str(exc), "code": "Credentials"},
            )
        duration = self._clock() - started
        return _scrub(job, _with_duration(outcome, duration))

    async def _run(self, provider: Provider, job: InfraPayload) -> CheckOutcome:
        if job.op == "observe":
            machines = await provider.observe(job.owner)
            return _outcome(
                CheckState.OK,
                f"observed {len(machines)} machines on {job.platform.get('name')}",
                {"machines": [m.to_json() for m in machines]},
            )
        if job.op == "create":
            made = await provider.create(
                MachineSpec(
                    owner=job.owner,
                    resource=job.resource,
                    slot=job.slot,
                    index=job.index,
                    op=job.op_id,
                    size=job.size,
                    image=job.image,
                    protect=job.protect,
                    labels=job.labels,
                    options=job.options,
                )
            )
            return _outcome(
                CheckState.OK, f"created {job.slot} ({made.cloud_id})", {"machine": made.to_json()}
            )
        if job.op == "adopt":
            return await self._adopt(provider, job)
        machine = await self._ours(provider, job)
        if isinstance(machine, CheckOutcome):
            return machine
        if job.op == "destroy":
            if machine.protected:
                return _outcome(
                    CheckState.CRITICAL,
                    f"INFRA DESTROY REFUSED - {job.slot} ({machine.cloud_id}) is protected",
                    {"code": "Protected"},
                )
            await provider.destroy(machine)
        elif job.op == "resize":
            if not job.size:
                return _outcome(CheckState.CRITICAL, "INFRA RESIZE FAILED - no size given", {})
            await self._resize(provider, job, machine, job.size)
        else:
            await _POWER[job.op](provider, machine)
        done = _DONE.get(job.op, job.op)
        return _outcome(
            CheckState.OK, f"{done} {job.slot or machine.cloud_id} ({machine.cloud_id})",
            {"machine": machine.to_json()},
        )  # fmt: skip

    async def _ours(self, provider: Provider, job: InfraPayload) -> Machine | CheckOutcome:
        """The machine the job names, looked up afresh, if it carries our owner tag."""
        found = await self._find(provider, job)
        if found is None:
            return _outcome(
                CheckState.CRITICAL,
                f"INFRA {job.op.upper()} FAILED - {job.cloud_id} is not on the platform",
                {"code": "NotFound"},
            )
        if found.owner != job.owner:
            return _outcome(
                CheckState.CRITICAL,
                f"INFRA {job.op.upper()} REFUSED - {job.cloud_id} does not carry our owner "
                "tag: it is not ours to change",
                {"code": "NotOwned"},
            )
        return found

    async def _adopt(self, provider: Provider, job: InfraPayload) -> CheckOutcome:
        """Our tags on a lookalike: a machine with our resource tag and no owner tag."""
        found = await self._find(provider, job)
        if found is None or found.owner:
            why = "is not on the platform" if found is None else "already has an owner tag"
            return _outcome(
                CheckState.CRITICAL, f"INFRA ADOPT REFUSED - {job.cloud_id} {why}",
                {"code": "NotAdoptable"},
            )  # fmt: skip
        slot = found.slot or job.slot
        tags = {TAG_OWNER: job.owner, TAG_RESOURCE: found.resource or job.resource, TAG_SLOT: slot}
        await provider.adopt(found, tags)
        adopted = Machine.from_json({**found.to_json(), "owner": job.owner, "slot": slot})
        return _outcome(
            CheckState.OK, f"adopted {found.cloud_id} as {slot}", {"machine": adopted.to_json()}
        )

    async def _find(self, provider: Provider, job: InfraPayload) -> Machine | None:
        if not job.cloud_id:
            return None
        found = await provider.find(job.cloud_id)
        return found if found is not None and found.state != "terminated" else None

    async def _resize(
        self, provider: Provider, job: InfraPayload, machine: Machine, size: str
    ) -> None:
        """Stop, wait until stopped, set the size, start again if it was running."""
        was_running = machine.state in ("running", "pending")
        if machine.state != "stopped":
            await provider.stop(machine)
            deadline = self._clock() + job.timeout / 2
            while True:
                now = await self._find(provider, job)
                if now is None:
                    raise ProviderError(f"{machine.cloud_id} vanished while stopping")
                if now.state == "stopped":
                    machine = now
                    break
                if self._clock() > deadline:
                    raise ProviderError(
                        f"{machine.cloud_id} did not stop within {job.timeout / 2:g}s",
                        code="StopTimeout",
                    )
                await asyncio.sleep(STOP_POLL)
        await provider.resize(machine, size)
        if was_running:
            await provider.start(machine)

    async def aclose(self) -> None:
        await self.providers.aclose()


async def _protect(provider: Provider, machine: Machine) -> None:
    await provider.protect(machine, True)


async def _unprotect(provider: Provider, machine: Machine) -> None:
    await provider.protect(machine, False)


_POWER: dict[str, Callable[[Provider, Machine], Awaitable[None]]] = {
    "start": lambda p, m: p.start(m),
    "stop": lambda p, m: p.stop(m),
    "reboot": lambda p, m: p.reboot(m),
    "protect": _protect,
    "unprotect": _unprotect,
}
#: The capability an op needs (`watchkeeper.infra.providers.base.CAPABILITIES`).
_CAPABILITY = {"unprotect": "protect"}
_DONE = {
    "destroy": "destroyed",
    "start": "started",
    "stop": "stopped",
    "reboot": "rebooted",
    "resize": "resized",
    "protect": "protected",
    "unprotect": "unprotected",
}


def _outcome(state: CheckState, output: str, data: dict[str, Any]) -> CheckOutcome:
    return CheckOutcome(state=state, output=output, data=data)


def _with_duration(outcome: CheckOutcome, duration: float) -> CheckOutcome:
    return CheckOutcome(
        state=outcome.state, output=outcome.output, data=outcome.data, duration=duration
    )


def _secret_parts(secret: str) -> set[str]:
    """The secret and each of its fields (``KEY:SECRET``, a JSON object's values)."""
    parts = {secret, *secret.split(":")}
    try:
        decoded = json.loads(secret)
    except ValueError:
        return parts
    if isinstance(decoded, dict):
        parts.update(str(v) for v in decoded.values())
    return parts


def _scrub(job: InfraPayload, outcome: CheckOutcome) -> CheckOutcome:
    """The outcome without the platform's secret in it, wherever a provider let it slip."""
    ref = job.platform.get("credentials")
    if not isinstance(ref, str):
        return outcome
    try:
        secret = resolve_secret(ref)
    except SecretError:
        return outcome
    parts = [p for p in _secret_parts(secret) if len(p) >= 6]
    if not parts:
        return outcome

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            for part in parts:
                value = value.replace(part, "***")
            return value
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    return CheckOutcome(
        state=outcome.state,
        output=clean(outcome.output),
        long_output=clean(outcome.long_output),
        metrics=outcome.metrics,
        duration=outcome.duration,
        data=clean(outcome.data),
    )
