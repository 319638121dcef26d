"""The libcloud provider: any Apache Libcloud compute driver, for the long tail of clouds.

``options.driver`` is a libcloud provider name (``dummy``, ``ec2``, ``openstack``...),
resolved with `libcloud.compute.providers.get_driver`; the driver is made once per
provider from the platform's credentials (``KEY:SECRET``, a bare ``KEY``, or a JSON
object ``{"key": ..., "secret": ..., <other constructor arguments>}``) followed by
``options.args`` and ``options.kwargs``. Libcloud is synchronous: every call runs in a
thread, one at a time per provider (a driver's connection is not shared safely).

How a node is known to be ours, first match wins:

    tags      drivers whose ``create_node`` takes ``ex_metadata`` get our tags there,
              read back from ``node.extra["tags"]`` or ``["metadata"]``
    name      every node is named ``wk--<resource>--<slot>--<owner>--<op>``
    ledger    a driver that kept neither (`DummyNodeDriver` ignores names and has no
              tags) has its nodes recorded in this provider instance; such a node's
              ``cloud_id`` is ``<node id>~<serial>``, because the dummy reuses ids after a
              destroy (the next node's id is the count of nodes plus one)

The ledger lives exactly as long as this provider and its driver; for the dummy driver
that is the whole "cloud". For a real cloud that kept neither, a restarted worker finds
nodes it cannot prove are ours: they are not reported, never touched.

Capabilities follow the driver: ``start``/``stop`` where it implements
``start_node``/``stop_node``, ``protect`` (our tag) where it has ``ex_create_tags`` and
``ex_delete_tags``; never ``resize`` or ``metrics``.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import itertools
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal

from libcloud.common.exceptions import BaseHTTPError, RateLimitReachedError
from libcloud.common.types import InvalidCredsError
from libcloud.compute.base import Node, NodeDriver
from libcloud.compute.providers import get_driver
from pydantic import BaseModel, Field, ValidationError

from watchkeeper.document.fields import Strict
from watchkeeper.document.platforms import PlatformConfig
from watchkeeper.errors import SecretError
from watchkeeper.infra.providers.base import (
    TAG_OP,
    TAG_OWNER,
    TAG_PROTECT,
    TAG_RESOURCE,
    TAG_SLOT,
    Machine,
    MachineSpec,
    ProviderError,
)
from watchkeeper.plugins import PROVIDERS
from watchkeeper.results import Metric
from watchkeeper.secrets import resolve_secret

#: A name that carries our tags: ``wk--<resource>--<slot>--<owner>--<op>``.
NAME_PREFIX = "wk"
NAME_SEPARATOR = "--"
#: libcloud's node states, as `watchkeeper.infra.providers.base.STATES`; a reboot
#: keeps a node running, as EC2 reports it.
_STATES = {
    "running": "running",
    "rebooting": "running",
    "starting": "pending",
    "pending": "pending",
    "stopping": "stopping",
    "stopped": "stopped",
    "suspended": "stopped",
    "paused": "stopped",
    "terminated": "terminated",
}
Scalar = str | int | float | bool | None


class LibcloudOptions(Strict):
    """Which libcloud compute driver, and what its constructor takes besides credentials."""

    driver: Annotated[str, Field(pattern=r"^[a-z0-9_]{1,64}$")] = Field(
        description="A libcloud compute provider name: dummy, ec2, openstack, gce, ..."
    )
    args: list[Scalar] = Field(
        default_factory=list, description="Positional constructor arguments after the key."
    )
    kwargs: dict[str, Scalar] = Field(
        default_factory=dict, description="Keyword constructor arguments (region, host, ...)."
    )
    location: str | None = Field(
        default=None, description="The location (id or name) new nodes are made in."
    )


class LibcloudPlatform(PlatformConfig):
    """A cloud reached through an Apache Libcloud compute driver."""

    provider: Literal["libcloud"]
    options: LibcloudOptions


#: Ledger-only keys: the size and image a node was made with, as the document named them.
TAG_SIZE = "watchkeeper:size"
TAG_IMAGE = "watchkeeper:image"


@dataclass(slots=True, eq=False)
class _Entry:
    """A node this provider made whose driver kept neither our name nor our tags."""

    node: Node
    cloud_id: str
    tags: dict[str, str]
    created_at: float = field(default_factory=time.time)


def _overrides(cls: type[NodeDriver], method: str) -> bool:
    """True when the driver implements ``method`` (NodeDriver's own only raises)."""
    mine = getattr(cls, method, None)
    return mine is not None and mine is not getattr(NodeDriver, method, None)


def _capabilities(cls: type[NodeDriver]) -> frozenset[str]:
    methods = {
        "observe": "list_nodes",
        "create": "create_node",
        "destroy": "destroy_node",
        "reboot": "reboot_node",
        "start": "start_node",
        "stop": "stop_node",
    }
    found = {what for what, method in methods.items() if _overrides(cls, method)}
    if _overrides(cls, "ex_create_tags") and _overrides(cls, "ex_delete_tags"):
        found.add("protect")
    return frozenset(found)


def encode_name(spec: MachineSpec) -> str:
    """The node name that carries our tags, for drivers that keep names."""
    parts = (spec.resource, spec.slot, spec.owner, spec.op)
    for part in parts:
        if NAME_SEPARATOR in part or part.startswith("-") or part.endswith("-"):
            raise ProviderError(
                f"{part!r} cannot be part of a libcloud node name: it has {NAME_SEPARATOR!r} "
                "or starts or ends with '-'",
                code="InvalidParameter",
            )
    return NAME_SEPARATOR.join((NAME_PREFIX, *parts))


def decode_name(name: str | None) -> dict[str, str] | None:
    """The tags `encode_name` put in ``name``, or None when it is not such a name."""
    parts = (name or "").split(NAME_SEPARATOR)
    if len(parts) != 5 or parts[0] != NAME_PREFIX or not parts[1] or not parts[2]:
        return None
    return {TAG_RESOURCE: parts[1], TAG_SLOT: parts[2], TAG_OWNER: parts[3], TAG_OP: parts[4]}


def _node_tags(node: Node) -> dict[str, str]:
    """The tags a driver reports for a node: EC2's ``tags``, OpenStack's ``metadata``,
    GCE's ``metadata.items``."""
    extra = node.extra or {}
    for key in ("tags", "metadata"):
        value = extra.get(key)
        if isinstance(value, Mapping) and isinstance(value.get("items"), list):
            value = {i.get("key"): i.get("value") for i in value["items"] if isinstance(i, dict)}
        if isinstance(value, Mapping) and value.get(TAG_RESOURCE):
            return {str(k): str(v) for k, v in value.items()}
    return {}


def _credentials(secret: str) -> tuple[list[Any], dict[str, Any]]:
    """Constructor arguments from the secret: ``KEY:SECRET``, ``KEY`` or a JSON object."""
    text = secret.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            raise ProviderError(
                "the platform's credentials look like JSON but are not", code="Credentials"
            ) from None
        if not isinstance(data, dict) or not isinstance(data.get("key"), str):
            raise ProviderError(
                'JSON credentials must be an object with a "key" (and "secret")',
                code="Credentials",
            )
        key, rest = data.pop("key"), data
        args = [key] + ([rest.pop("secret")] if rest.get("secret") is not None else [])
        return args, rest
    key, _, password = text.partition(":")
    return [key] + ([password] if password else []), {}


@PROVIDERS.register
class LibcloudProvider:
    """Nodes through one libcloud compute driver; see the module docstring."""

    kind: ClassVar[str] = "libcloud"
    Config: ClassVar[type[BaseModel]] = LibcloudPlatform
    #: What some driver offers; an instance's ``capabilities`` is what its driver does.
    capabilities: ClassVar[frozenset[str]] = frozenset(
        {"observe", "create", "destroy", "start", "stop", "reboot", "protect"}
    )

    def __init__(self, platform: Mapping[str, Any]) -> None:
        try:
            self.config = LibcloudPlatform.model_validate(dict(platform))
        except ValidationError as exc:
            raise ProviderError(
                f"invalid libcloud platform: {exc}", code="InvalidConfiguration"
            ) from None
        self.options = self.config.options
        try:
            self.driver_class: type[NodeDriver] = get_driver(self.options.driver)
        except AttributeError:
            raise ProviderError(
                f"libcloud has no compute driver {self.options.driver!r}",
                code="InvalidConfiguration",
            ) from None
        # base.py declares a ClassVar; what a platform can do depends on its driver.
        vars(self)["capabilities"] = _capabilities(self.driver_class)
        self._driver: NodeDriver | None = None
        self._secrets: tuple[str, ...] = ()
        self._lock = asyncio.Lock()
        self._ledger: list[_Entry] = []
        self._serial = itertools.count(1)

    # --- the lifecycle --------------------------------------------------------------------

    async def observe(self, owner: str) -> Sequence[Machine]:
        async with self._lock:
            nodes = await self._call("list_nodes")
            return [m for _, m in self._owned(nodes)]

    async def find(self, cloud_id: str) -> Machine | None:
        """One machine, from a fresh listing (the platform has no cheaper lookup)."""
        return next((m for m in await self.observe("") if m.cloud_id == cloud_id), None)

    async def create(self, spec: MachineSpec) -> Machine:
        self._require("create")
        name = encode_name(spec)
        async with self._lock:
            slot = (spec.owner, spec.resource, spec.slot)
            for _, machine in self._owned(await self._call("list_nodes")):
                if (machine.owner, machine.resource, machine.slot) == slot and (
                    machine.state != "terminated"
                ):
                    return machine  # made before: the platform is the state
            kwargs = await self._create_arguments(spec)
            node = await self._call("create_node", name=name, **kwargs)
            if not _node_tags(node) and decode_name(node.name) is None:
                # Such a driver (the dummy) may also stamp any size and image on the node:
                # the ledger keeps the ones the document named, to be reported.
                asked = {TAG_SIZE: spec.size or "", TAG_IMAGE: spec.image or ""}
                entry = _Entry(node, f"{node.id}~{next(self._serial)}", spec.tags() | asked)
                self._ledger.append(entry)
            found = [m for n, m in self._owned([node]) if n is node]
        if not found:
            raise ProviderError(
                f"the driver made node {node.id} but it does not show as ours", code="Failed"
            )
        return found[0]

    async def destroy(self, machine: Machine) -> None:
        self._require("destroy")
        async with self._lock:
            found = await self._find(machine, "destroy")
            if found is None:
                return  # already gone
            node, current = found
            if current.protected:
                raise ProviderError(
                    f"node {machine.cloud_id} is protected ({TAG_PROTECT}): unprotect it first",
                    code="OperationNotPermitted",
                )
            await self._expect_true("destroy_node", node, machine)
            self._ledger = [e for e in self._ledger if e.node is not node]

    async def start(self, machine: Machine) -> None:
        await self._power("start", "start_node", machine)

    async def stop(self, machine: Machine) -> None:
        await self._power("stop", "stop_node", machine)

    async def reboot(self, machine: Machine) -> None:
        await self._power("reboot", "reboot_node", machine)

    async def resize(self, machine: Machine, size: str) -> None:
        raise ProviderError(
            "the libcloud provider cannot resize: libcloud has no common call for it "
            "(use update: replace)",
            code="Unsupported",
        )

    async def protect(self, machine: Machine, on: bool) -> None:
        """Our protect tag, where the driver can tag nodes."""
        self._require("protect")
        async with self._lock:
            found = await self._find(machine, "protect")
            if found is None:
                raise ProviderError(
                    f"node {machine.cloud_id} is not on the platform", code="NotFound"
                )
            node, _ = found
            if on:
                await self._call("ex_create_tags", node, {TAG_PROTECT: "true"})
            else:
                await self._call("ex_delete_tags", node, {TAG_PROTECT: "true"})

    async def adopt(self, machine: Machine, tags: Mapping[str, str]) -> None:
        """Unsupported: a node this provider reports is ours by name or by its ledger,
        so it never shows an unowned lookalike to adopt."""
        raise ProviderError(
            f"the libcloud provider cannot adopt nodes ({machine.cloud_id}): it reports only "
            "nodes it made", code="Unsupported",
        )  # fmt: skip

    async def metrics(self, machine: Machine, names: Sequence[str]) -> Sequence[Metric]:
        raise ProviderError(
            "the libcloud provider has no metrics: libcloud has no telemetry API",
            code="Unsupported",
        )

    async def aclose(self) -> None:
        """Forget the driver (and, for the dummy, its whole cloud)."""
        self._driver = None
        self._ledger = []

    # --- steps ----------------------------------------------------------------------------

    def _require(self, capability: str) -> None:
        if capability not in self.capabilities:
            raise ProviderError(
                f"libcloud driver {self.options.driver!r} cannot {capability} nodes",
                code="Unsupported",
            )

    async def _power(self, capability: str, method: str, machine: Machine) -> None:
        self._require(capability)
        async with self._lock:
            found = await self._find(machine, capability)
            if found is None:
                raise ProviderError(
                    f"node {machine.cloud_id} is not on the platform", code="NotFound"
                )
            await self._expect_true(method, found[0], machine)

    async def _expect_true(self, method: str, node: Node, machine: Machine) -> None:
        if await self._call(method, node) is False:
            raise ProviderError(
                f"{method} of node {machine.cloud_id} returned False", code="Failed", retryable=True
            )

    async def _find(self, machine: Machine, what: str) -> tuple[Node, Machine] | None:
        """The node of ``machine`` and how it shows now, if it carries our owner tag;
        None when it is gone."""
        nodes = await self._call("list_nodes")
        for node, current in self._owned(nodes):
            if current.cloud_id == machine.cloud_id:
                if current.owner and current.owner == machine.owner:
                    return node, current
                break
        else:
            if not any(str(n.id) == machine.cloud_id for n in nodes):
                return None
        raise ProviderError(
            f"node {machine.cloud_id} does not carry the owner tag {machine.owner!r}: "
            f"not ours to {what}",
            code="OperationNotPermitted",
        )

    def _owned(self, nodes: Sequence[Node]) -> list[tuple[Node, Machine]]:
        """Each node that carries our resource tag, with its machine; the rest are left
        out (the dummy's two seeded nodes among them)."""
        listed = {id(n) for n in nodes}
        ids = [str(n.id) for n in nodes]
        out = []
        for node in nodes:
            entry = next((e for e in self._ledger if e.node is node), None)
            if entry is None and ids.count(str(node.id)) == 1:
                # A driver that hands out new objects per listing: match its (unique) id.
                entry = next(
                    (
                        e
                        for e in self._ledger
                        if id(e.node) not in listed and str(e.node.id) == str(node.id)
                    ),
                    None,
                )
            tags = _node_tags(node) or decode_name(node.name) or (entry.tags if entry else {})
            if tags.get(TAG_RESOURCE):
                out.append((node, self._machine(node, tags, entry)))
        return out

    def _machine(self, node: Node, tags: Mapping[str, str], entry: _Entry | None) -> Machine:
        state = node.state
        raw = str(getattr(state, "value", state) or "unknown")
        created = node.created_at.timestamp() if node.created_at else None
        size = node.size.id if node.size is not None else node.extra.get("instance_type")
        image = node.image.id if node.image is not None else node.extra.get("image_id")
        if entry is not None:  # what it was made with, as the document named it
            size = entry.tags.get(TAG_SIZE) or size
            image = entry.tags.get(TAG_IMAGE) or image
        return Machine(
            cloud_id=entry.cloud_id if entry else str(node.id),
            resource=tags.get(TAG_RESOURCE, ""),
            slot=tags.get(TAG_SLOT, ""),
            owner=tags.get(TAG_OWNER, ""),
            op=tags.get(TAG_OP, ""),
            state=_STATES.get(raw, "unknown"),
            size=None if size is None else str(size),
            image=None if image is None else str(image),
            address=next(iter(node.private_ips or []), None),
            public_address=next(iter(node.public_ips or []), None),
            protected=tags.get(TAG_PROTECT) == "true",
            tags=dict(tags),
            created_at=created if created is not None else (entry.created_at if entry else None),
        )

    async def _create_arguments(self, spec: MachineSpec) -> dict[str, Any]:
        """``create_node``'s size, image, location, our tags and the resource's options."""
        accepts = inspect.signature(self.driver_class.create_node).parameters
        extra = dict(spec.options)
        open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepts.values())
        unknown = sorted(k for k in extra if k not in accepts and not open_ended)
        if unknown or {"name", "size", "image", "location"} & set(extra):
            raise ProviderError(
                f"driver {self.options.driver!r} takes no create option "
                f"{', '.join(unknown) or 'name/size/image/location'}",
                code="InvalidParameter",
            )
        kwargs: dict[str, Any] = {
            "size": await self._pick("list_sizes", "size", spec.size),
            "image": await self._pick("list_images", "image", spec.image),
            **extra,
        }
        if self.options.location is not None:
            kwargs["location"] = await self._pick(
                "list_locations", "location", self.options.location
            )
        if "ex_metadata" in accepts:
            kwargs["ex_metadata"] = spec.tags()
        return kwargs

    async def _pick(self, method: str, what: str, wanted: str | None) -> Any:
        """The driver's object whose id or name is ``wanted`` (an image by ``get_image``
        where the driver has it: listing every image of a cloud can take seconds)."""
        if what == "image" and wanted and _overrides(self.driver_class, "get_image"):
            try:
                return await self._call("get_image", wanted)
            except ProviderError:
                pass  # perhaps a name: look for it in the listing
        choices = await self._call(method)
        for choice in choices:
            if wanted is not None and wanted in (str(choice.id), choice.name):
                return choice
        known = ", ".join(str(c.id) for c in itertools.islice(choices, 20))
        raise ProviderError(
            f"driver {self.options.driver!r} has no {what} {wanted!r} (it has: {known})"
            if wanted
            else f"a libcloud resource needs a {what} (one of: {known})",
            code="InvalidParameter",
        )

    # --- the driver -----------------------------------------------------------------------

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """``driver.method(...)`` in a thread, its errors as `ProviderError` (the caller
        holds ``_lock``)."""
        if self._driver is None:
            self._driver = await asyncio.to_thread(self._make_driver)
        call: Callable[..., Any] = getattr(self._driver, method)
        try:
            return await asyncio.to_thread(functools.partial(call, *args, **kwargs))
        except NotImplementedError:
            raise ProviderError(
                f"libcloud driver {self.options.driver!r} has no {method}", code="Unsupported"
            ) from None
        except Exception as exc:  # the driver's and its HTTP library's, mapped once here
            raise self._error(method, exc) from None

    def _make_driver(self) -> NodeDriver:
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        if self.config.credentials:
            try:
                secret = resolve_secret(self.config.credentials)
            except SecretError as exc:
                raise ProviderError(str(exc), code="Credentials") from None
            args, kwargs = _credentials(secret)
            self._secrets = tuple(
                s
                for s in (secret, *(str(a) for a in args), *map(str, kwargs.values()))
                if len(s) >= 4
            )
        try:
            make: Callable[..., NodeDriver] = self.driver_class
            return make(*args, *self.options.args, **(kwargs | self.options.kwargs))
        except TypeError as exc:
            if not args and "required positional argument" in str(exc):
                raise ProviderError(
                    f"driver {self.options.driver!r} needs credentials (its key): set the "
                    "platform's credentials to a reference, env:NAME or file:/path",
                    code="Credentials",
                ) from None
            raise self._error("the driver's constructor", exc) from None
        except Exception as exc:
            raise self._error("the driver's constructor", exc) from None

    def _error(self, what: str, exc: Exception) -> ProviderError:
        """A libcloud failure as a `ProviderError`, without the credentials in it."""
        retryable = isinstance(exc, OSError | TimeoutError | RateLimitReachedError)
        code = type(exc).__name__
        if isinstance(exc, InvalidCredsError):
            code = "InvalidCredentials"
        elif isinstance(exc, BaseHTTPError):
            code = str(exc.code)
            retryable = retryable or (
                isinstance(exc.code, int) and (exc.code >= 500 or exc.code == 429)
            )
        message = str(exc) or type(exc).__name__
        for secret in self._secrets:
            message = message.replace(secret, "***")
        return ProviderError(
            f"libcloud {self.options.driver} {what}: {message}", code=code, retryable=retryable
        )


__all__ = ["LibcloudOptions", "LibcloudPlatform", "LibcloudProvider", "decode_name", "encode_name"]
