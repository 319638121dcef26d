"""The platform action: ask the target's platform (a cloud or on-prem API) to reboot,
start, stop or replace it, through the platform's provider.

The manager sends the platform's document object (credentials as a reference) and its
owner id with the job, and the job goes to a worker of the platform's zone. The worker
finds the machine filling the target host's slot among the machines carrying our owner
tag, and calls the provider (`watchkeeper.plugins.PROVIDERS`). A host no platform
machine of ours fills (a host of the document, not a slot) cannot be acted on: the action
fails and says so. ``replace`` makes a new machine of the same shape for the slot, then
destroys the old one (create before destroy; the reconciler keeps the newer); a
protected machine is not replaced.
"""

from __future__ import annotations

import secrets
from typing import ClassVar, Literal

from pydantic import BaseModel

from watchkeeper.document.fields import Name, Strict
from watchkeeper.document.slots import slot_index
from watchkeeper.infra.providers.base import (
    TAG_RESOURCE,
    Machine,
    MachineSpec,
    Provider,
    ProviderError,
)
from watchkeeper.infra.providers.cache import ProviderCache
from watchkeeper.plugins import ACTIONS, PROVIDERS, UnknownKind
from watchkeeper.results import CheckOutcome
from watchkeeper.worker.actions.base import ActionTarget, failed, succeeded
from watchkeeper.worker.executors import Executors

#: The operations a platform action may ask for.
OPERATIONS = ("reboot", "start", "stop", "replace")


class PlatformAction(Strict):
    """Ask the target's platform to act on it (reboot, start, stop, replace)."""

    kind: Literal["platform"]
    platform: Name
    operation: Literal["reboot", "start", "stop", "replace"]

    #: Fields that name another object of the document: field -> its section.
    references: ClassVar[dict[str, str]] = {"platform": "platforms"}


@ACTIONS.register
class PlatformActionRunner:
    """Runs a ``platform`` action with the provider of the platform."""

    kind: ClassVar[str] = "platform"
    Config: ClassVar[type[BaseModel]] = PlatformAction

    def __init__(
        self, executors: Executors | None = None, providers: ProviderCache | None = None
    ) -> None:
        """The registry builds every action with the worker's executors: their providers
        (one per platform) are this action's too, and the executors close them."""
        self._own = providers is None and executors is None
        self._providers = providers or (
            executors.providers if executors is not None else ProviderCache()
        )

    async def run(self, spec: PlatformAction, target: ActionTarget) -> CheckOutcome:
        platform = target.platform
        what = f"{spec.operation} {target.host}"
        if not platform or platform.get("name") != spec.platform:
            return failed(
                f"PLATFORM ACTION FAILED - platform {spec.platform} was not sent with the "
                "job (is it in the document?)"
            )
        if not target.owner:
            return failed("PLATFORM ACTION FAILED - the job carries no owner id")
        kind = str(platform.get("provider", ""))
        try:
            provider = await self._providers.get(platform)
        except UnknownKind:
            known = ", ".join(PROVIDERS.kinds()) or "none"
            return failed(
                f"PLATFORM ACTION FAILED - no provider {kind!r} (platform {spec.platform}; "
                f"installed providers: {known})"
            )
        needs = {"replace": {"create", "destroy"}}.get(spec.operation, {spec.operation})
        lacking = needs - set(getattr(provider, "capabilities", ()))
        if lacking:
            return failed(
                f"PLATFORM ACTION FAILED - provider {kind!r} cannot {spec.operation} machines "
                f"(platform {spec.platform}; it lacks {', '.join(sorted(lacking))})"
            )
        try:
            machine = next(
                (
                    m
                    for m in await provider.observe(target.owner)
                    if m.owner == target.owner and m.slot == target.host
                    and m.state != "terminated"
                ),
                None,
            )  # fmt: skip
            if machine is None:
                return failed(
                    f"PLATFORM ACTION FAILED - no machine of ours fills {target.host} on "
                    f"{spec.platform} (only slots of the document's infrastructure can be "
                    "acted on)"
                )
            if spec.operation == "replace":
                made = await self._replace(provider, machine, target.owner)
                return succeeded(
                    f"PLATFORM ACTION OK - replaced {target.host}: {machine.cloud_id} -> "
                    f"{made.cloud_id}"
                )
            await getattr(provider, spec.operation)(machine)
        except ProviderError as exc:
            code = f" ({exc.code})" if exc.code else ""
            return failed(f"PLATFORM ACTION FAILED{code} - {what}: {exc}")
        return succeeded(f"PLATFORM ACTION OK - {what} ({machine.cloud_id}) on {spec.platform}")

    async def _replace(self, provider: Provider, machine: Machine, owner: str) -> Machine:
        if machine.protected:
            raise ProviderError(f"{machine.cloud_id} is protected", code="OperationNotPermitted")
        resource = machine.resource or machine.tags.get(TAG_RESOURCE, "")
        made = await provider.create(
            MachineSpec(
                owner=owner,
                resource=resource,
                slot=machine.slot,
                index=slot_index(resource, machine.slot) or 0,
                op="replace-" + secrets.token_hex(6),
                size=machine.size,
                image=machine.image,
            )
        )
        await provider.destroy(machine)
        return made

    async def aclose(self) -> None:
        if self._own:
            await self._providers.aclose()
