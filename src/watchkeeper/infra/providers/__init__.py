"""Infrastructure providers: one per platform API, behind `watchkeeper.plugins.PROVIDERS`."""

from __future__ import annotations

from watchkeeper.infra.providers.base import PlatformRequest, PowerControl, Provider

__all__ = ["PlatformRequest", "PowerControl", "Provider"]
