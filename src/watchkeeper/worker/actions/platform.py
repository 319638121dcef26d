"""The platform action: ask the target's platform (a cloud API) to reboot, start, stop or
replace it, through a hook the infrastructure support registers per provider.

    register_platform_hook("ec2", hook)      # infrastructure code, at import
    hook(PlatformRequest) -> CheckOutcome    # OK when the platform did it

The manager sends the platform's document object with the job, and the job goes to a
worker of the platform's zone (where its credentials are). With no hook for the
provider the action fails and says so.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel

from watchkeeper.document.models import PlatformAction
from watchkeeper.results import CheckOutcome
from watchkeeper.worker.actions.base import ActionError, ActionTarget, failed, register
from watchkeeper.worker.executors import Executors


@dataclass(frozen=True, slots=True, kw_only=True)
class PlatformRequest:
    """What a platform hook is asked to do, and to which machine."""

    operation: str
    #: The document's platform object: name, provider, zone, credentials (a secret
    #: reference, resolve it with `watchkeeper.secrets.resolve_secret`), options.
    platform: dict[str, Any]
    host: str
    address: str
    service: str | None = None
    timeout: float = 60.0
    extra: dict[str, Any] = field(default_factory=dict)


PlatformHook = Callable[[PlatformRequest], Awaitable[CheckOutcome]]

#: Provider -> hook. Filled by the infrastructure providers.
PLATFORM_HOOKS: dict[str, PlatformHook] = {}


def register_platform_hook(provider: str, hook: PlatformHook, *, replace: bool = False) -> None:
    """Let platform actions on ``provider`` platforms run ``hook``; a second claim raises."""
    if provider in PLATFORM_HOOKS and PLATFORM_HOOKS[provider] is not hook and not replace:
        raise ActionError(f"a platform hook for provider {provider!r} is already registered")
    PLATFORM_HOOKS[provider] = hook


def unregister_platform_hook(provider: str) -> None:
    PLATFORM_HOOKS.pop(provider, None)


@register
class PlatformActionRunner:
    """Runs a ``platform`` action with the hook of the platform's provider."""

    kind: ClassVar[str] = "platform"
    Config: ClassVar[type[BaseModel]] = PlatformAction

    def __init__(self, executors: Executors | None = None) -> None:
        """The registry builds every action with the executors; a hook needs none."""

    async def run(self, spec: PlatformAction, target: ActionTarget) -> CheckOutcome:
        platform = target.platform
        if not platform or platform.get("name") != spec.platform:
            return failed(
                f"PLATFORM ACTION FAILED - platform {spec.platform} was not sent with the "
                "job (is it in the document?)"
            )
        provider = str(platform.get("provider", ""))
        hook = PLATFORM_HOOKS.get(provider)
        if hook is None:
            known = ", ".join(sorted(PLATFORM_HOOKS)) or "none"
            return failed(
                f"PLATFORM ACTION FAILED - no platform hook for provider {provider!r} "
                f"(platform {spec.platform}; providers with hooks: {known})"
            )
        return await hook(
            PlatformRequest(
                operation=spec.operation,
                platform=dict(platform),
                host=target.host,
                address=target.address,
                service=target.service,
                timeout=target.timeout,
            )
        )

    async def aclose(self) -> None:
        return None
