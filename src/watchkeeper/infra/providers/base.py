"""What an infrastructure provider is: a plugin that speaks one platform's API.

A provider is a class registered with ``@PROVIDERS.register`` (`watchkeeper.plugins`):
``kind`` is the ``provider`` of the document's platform objects it serves, and ``Config``
the model of such a platform object, a subclass of `PlatformConfig` whose ``provider``
field is ``Literal[kind]`` and whose ``options`` are the provider's own typed model.

Lifecycle: a worker of the platform's zone makes one instance per platform it serves,
``cls(platform)`` with the platform's document object as JSON (its ``credentials`` a
secret reference the provider resolves on the worker with
`watchkeeper.secrets.resolve_secret`, never sent anywhere), uses it concurrently, and
calls `aclose` once when done.

The methods are the whole lifecycle of the machines Watchkeeper owns on the platform:

    observe(owner)            every machine carrying our resource tag (ours or a lookalike)
    find(cloud_id)            one machine, looked up afresh (or None)
    create(spec)              one machine for one slot, tagged (owner, resource, slot, op)
    destroy / start / stop / reboot (machine)
    resize(machine, size)     the caller has stopped it first when the platform needs that
    protect(machine, on)      the platform's own termination guard (EC2
                              DisableApiTermination); a provider without one keeps our tag
    adopt(machine, tags)      put our tags on a machine that has no owner tag (an
                              operator's ``watchkeeper infra adopt``)
    metrics(machine)          telemetry through the API (`Metric` values, like perfdata)

State lives on the platform, never in a file: the tags of `TAG_KEYS` (or, where a platform
has no tags, what the provider encodes in the machine's name) are how a restarted worker
or manager finds what it made. Every method raises `ProviderError` for a failure, with the
platform's own error code in ``code`` (``RequestLimitExceeded``); a provider never
returns a credential in a `Machine`, an error message or a metric.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel

from watchkeeper.errors import WatchkeeperError
from watchkeeper.results import Metric

#: Tag keys every owned machine carries.
TAG_OWNER = "watchkeeper:owner"
TAG_RESOURCE = "watchkeeper:resource"
TAG_SLOT = "watchkeeper:slot"
TAG_OP = "watchkeeper:op"
TAG_PROTECT = "watchkeeper:protect"
TAG_KEYS = (TAG_OWNER, TAG_RESOURCE, TAG_SLOT, TAG_OP, TAG_PROTECT)

#: The machine states a provider reports, whatever its platform calls them.
STATES = ("pending", "running", "stopping", "stopped", "terminated", "unknown")

#: What a provider may be able to do; `Provider.capabilities` names its subset.
CAPABILITIES = frozenset(
    {
        "observe", "create", "destroy", "start", "stop", "reboot", "resize", "protect",
        "metrics", "adopt",
    }
)  # fmt: skip


class ProviderError(WatchkeeperError):
    """A platform call failed; ``code`` is the platform's error code when it gave one."""

    def __init__(self, message: str, *, code: str = "", retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        #: Throttling, a 5xx, a timeout: the same call may succeed later.
        self.retryable = retryable


@dataclass(frozen=True, slots=True, kw_only=True)
class Machine:
    """One machine as the platform reports it; JSON-able through `to_json`/`from_json`."""

    #: The platform's id (``i-0abc…``, an LXC container name, a libcloud node id).
    cloud_id: str
    #: The resource and slot of our tags ("" when the machine carries none).
    resource: str = ""
    slot: str = ""
    #: Our owner tag: the store's cluster id, or "" (a lookalike: never touched).
    owner: str = ""
    #: The operation that created it (tag ``watchkeeper:op``).
    op: str = ""
    #: One of `STATES`.
    state: str = "unknown"
    size: str | None = None
    image: str | None = None
    #: The private address, and the public one when the platform gave one.
    address: str | None = None
    public_address: str | None = None
    #: The platform's termination guard, or our protect tag where it has none.
    protected: bool = False
    #: Every tag the machine carries (ours included), for drift and the UI.
    tags: Mapping[str, str] = field(default_factory=dict)
    #: When the platform says it was made, epoch seconds, if it says.
    created_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in self.__dataclass_fields__}
        out["tags"] = dict(self.tags)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Machine:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["tags"] = dict(known.get("tags") or {})
        return cls(**known)


@dataclass(frozen=True, slots=True, kw_only=True)
class MachineSpec:
    """What `Provider.create` makes: one slot of one resource, tagged so it can be found."""

    owner: str
    resource: str
    slot: str
    #: The slot's ordinal (``web-2`` is 2), for options that differ per slot.
    index: int = 0
    #: The operation id: tagged on the machine, and the platform's idempotency token
    #: (EC2 ``ClientToken``) where it has one.
    op: str
    size: str | None = None
    image: str | None = None
    protect: bool = False
    #: The resource's labels (providers may add them as tags).
    labels: Mapping[str, str] = field(default_factory=dict)
    #: The resource's provider options (``subnet``, ``private_ip``, ``template``...).
    options: Mapping[str, Any] = field(default_factory=dict)

    def tags(self) -> dict[str, str]:
        """The tags every owned machine carries."""
        tags = {TAG_OWNER: self.owner, TAG_RESOURCE: self.resource, TAG_SLOT: self.slot}
        tags[TAG_OP] = self.op
        if self.protect:
            tags[TAG_PROTECT] = "true"
        return tags


class Provider(Protocol):
    """One platform API; see the module docstring for the lifecycle and the errors."""

    kind: ClassVar[str]
    Config: ClassVar[type[BaseModel]]
    #: The subset of `CAPABILITIES` it offers (per instance where it depends on the
    #: platform, as a libcloud driver's does).
    capabilities: frozenset[str]

    def __init__(self, platform: Mapping[str, Any]) -> None: ...

    async def observe(self, owner: str) -> Sequence[Machine]:
        """Every machine with our resource tag, whoever owns it (a lookalike is reported
        with its owner, or ""), terminated ones included while the platform shows them;
        raises `ProviderError` when the listing is incomplete (a failed page is a failed
        observation, never a shorter list). A platform object the provider cannot use
        raises `ProviderError` with code ``InvalidConfiguration``."""
        ...

    async def find(self, cloud_id: str) -> Machine | None:
        """One machine as the platform shows it now, or None when it is not there: the
        worker's fresh look before it changes one (a provider may implement it as an
        `observe` and a filter)."""
        ...

    async def create(self, spec: MachineSpec) -> Machine: ...

    async def destroy(self, machine: Machine) -> None: ...

    async def start(self, machine: Machine) -> None: ...

    async def stop(self, machine: Machine) -> None: ...

    async def reboot(self, machine: Machine) -> None: ...

    async def resize(self, machine: Machine, size: str) -> None: ...

    async def protect(self, machine: Machine, on: bool) -> None: ...

    async def adopt(self, machine: Machine, tags: Mapping[str, str]) -> None:
        """Tag a machine without an owner tag as ours; refuse one that has an owner."""
        ...

    async def metrics(self, machine: Machine, names: Sequence[str]) -> Sequence[Metric]:
        """Telemetry of one machine: ``state`` (1 running, 0 not) and the named metrics
        the platform has."""
        ...

    async def aclose(self) -> None:
        """Release connections; the provider is not used afterwards."""
        ...


__all__ = [
    "CAPABILITIES",
    "STATES",
    "TAG_KEYS",
    "TAG_OP",
    "TAG_OWNER",
    "TAG_PROTECT",
    "TAG_RESOURCE",
    "TAG_SLOT",
    "Machine",
    "MachineSpec",
    "Provider",
    "ProviderError",
]
