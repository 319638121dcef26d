"""What an infrastructure provider is: a plugin that speaks one platform's API.

A provider is a class registered with ``@PROVIDERS.register`` (`watchkeeper.plugins`):
``kind`` is the ``provider`` of the document's platform objects it serves, and ``Config``
the model of such a platform object (its ``provider`` field is ``Literal[kind]``).

Lifecycle: a worker makes one instance per platform it serves, ``cls(platform)`` with the
platform's document object (its ``credentials`` a secret reference the provider resolves
on the worker), uses it concurrently, and calls `aclose` once when done.

What a provider can do is split into capability protocols, checked at run time; a
provider implements the ones its API offers:

    PowerControl   reboot, start, stop or replace a machine (remediation's platform actions)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel

from watchkeeper.results import CheckOutcome

#: The operations of `PowerControl`, as platform actions name them.
OPERATIONS = ("reboot", "start", "stop", "replace")


@dataclass(frozen=True, slots=True, kw_only=True)
class PlatformRequest:
    """What a provider is asked to do, and to which machine."""

    operation: str
    #: The document's platform object: name, provider, zone, credentials (a secret
    #: reference: resolve it with `watchkeeper.secrets.resolve_secret`), options.
    platform: Mapping[str, Any]
    host: str
    address: str
    service: str | None = None
    timeout: float = 60.0


class Provider(Protocol):
    """One platform API; see the module docstring for the lifecycle."""

    kind: ClassVar[str]
    Config: ClassVar[type[BaseModel]]

    def __init__(self, platform: Mapping[str, Any]) -> None: ...

    async def aclose(self) -> None:
        """Release connections; the provider is not used afterwards."""
        ...


@runtime_checkable
class PowerControl(Protocol):
    """Acts on one machine: ``request.operation`` is one of `OPERATIONS`."""

    async def operate(self, request: PlatformRequest) -> CheckOutcome:
        """Do it and say how it went (OK done, CRITICAL failed); never raise for a failure."""
        ...
