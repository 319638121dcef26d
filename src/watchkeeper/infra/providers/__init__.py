"""Infrastructure providers: one per platform API, behind `watchkeeper.plugins.PROVIDERS`."""

from __future__ import annotations

from watchkeeper.infra.providers.base import (
    Machine,
    MachineSpec,
    Provider,
    ProviderError,
)

__all__ = ["Machine", "MachineSpec", "Provider", "ProviderError"]
