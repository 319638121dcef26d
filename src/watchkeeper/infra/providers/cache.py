"""One provider per platform per process, made on first use and again when it changes.

A worker's infra jobs, platform actions and platform checks of one platform share the
provider (its API client, its rate limit): the worker's `Executors` holds the one cache
(`watchkeeper.worker.runner.job_runner` hands it to the others). A changed platform
object (new options, new credentials reference) makes a new one and closes the old.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from watchkeeper.infra.providers.base import Provider
from watchkeeper.plugins import PROVIDERS


class ProviderCache:
    def __init__(self) -> None:
        self._providers: dict[str, tuple[dict[str, Any], Provider]] = {}

    async def get(self, platform: Mapping[str, Any]) -> Provider:
        """The provider of ``platform``; `UnknownKind` when none is installed for it."""
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
