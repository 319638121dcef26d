"""The platform action: ask the target's platform (a cloud or on-prem API) to reboot,
start, stop or replace it, through the platform's provider.

The manager sends the platform's document object with the job, and the job goes to a
worker of the platform's zone (where its credentials are). The provider is the plugin of
`watchkeeper.plugins.PROVIDERS` named by the platform's ``provider``; it must offer the
`PowerControl` capability. A provider is made once per platform and kept for the
worker's life. With no such provider, or one that cannot do it, the action fails and
says so.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, cast

from pydantic import BaseModel

from watchkeeper.document.fields import Name, Strict
from watchkeeper.infra.providers.base import PlatformRequest, PowerControl, Provider
from watchkeeper.plugins import ACTIONS, PROVIDERS, UnknownKind
from watchkeeper.results import CheckOutcome
from watchkeeper.worker.actions.base import ActionTarget, failed
from watchkeeper.worker.executors import Executors


class PlatformAction(Strict):
    """Ask the target's platform to act on it (reboot, replace)."""

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

    def __init__(self, executors: Executors | None = None) -> None:
        """The registry builds every action with the executors; providers need none."""
        self._providers: dict[str, tuple[dict[str, Any], Provider]] = {}

    async def run(self, spec: PlatformAction, target: ActionTarget) -> CheckOutcome:
        platform = target.platform
        if not platform or platform.get("name") != spec.platform:
            return failed(
                f"PLATFORM ACTION FAILED - platform {spec.platform} was not sent with the "
                "job (is it in the document?)"
            )
        kind = str(platform.get("provider", ""))
        try:
            provider = await self._provider(platform)
        except UnknownKind:
            known = ", ".join(PROVIDERS.kinds()) or "none"
            return failed(
                f"PLATFORM ACTION FAILED - no provider {kind!r} (platform {spec.platform}; "
                f"installed providers: {known})"
            )
        if not isinstance(provider, PowerControl):
            return failed(
                f"PLATFORM ACTION FAILED - provider {kind!r} cannot {spec.operation} "
                f"machines (platform {spec.platform})"
            )
        return await provider.operate(
            PlatformRequest(
                operation=spec.operation,
                platform=dict(platform),
                host=target.host,
                address=target.address,
                service=target.service,
                timeout=target.timeout,
            )
        )

    async def _provider(self, platform: dict[str, Any]) -> Provider:
        """The provider of this platform, made on first use and again when it changed."""
        name = str(platform.get("name"))
        known = self._providers.get(name)
        if known is not None and known[0] == platform:
            return known[1]
        cls = cast("type[Provider]", PROVIDERS.get(str(platform.get("provider", ""))))
        provider = cls(platform)
        self._providers[name] = (dict(platform), provider)
        if known is not None:
            await known[1].aclose()
        return provider

    async def aclose(self) -> None:
        providers, self._providers = list(self._providers.values()), {}
        for _, provider in providers:
            await provider.aclose()
