"""The lxc provider: containers on the worker's own host, cloned from a template container.

A worker running as root on the LXC host drives the ``lxc-*`` commands (no shell, no
liblxc binding). A resource's ``image`` names the template container in ``lxcpath``;
each slot becomes a clone of it (``lxc-copy -s -B overlayfs``, or a full copy), named
``<slot>-<8 hex of sha256(owner)>`` so two managers sharing a host never collide.

LXC has no tags, so each clone carries ``<lxcpath>/<name>/watchkeeper.json``::

    {"tags": {"watchkeeper:owner": ..., ...}, "image": "tmpl", "size": "512M",
     "address": "10.213.20.12/24", "created_at": 1733234567.1}

It is written *before* the clone (into the directory ``lxc-copy`` then fills), so a
worker that dies mid-create leaves a container that observe still finds. A container
without the file is not reported at all; one whose file has no owner is a lookalike.

Addresses are static: slot index ``i`` gets host ``first_address + i`` of ``network``
(a resource may move its block with the option ``first_address``), written to the clone's
config with a veth on ``bridge``. A template whose init runs a DHCP client (busybox's
udhcpc) flushes that address, so after every start the provider puts it back with
``lxc-attach -- ip addr add`` until it stays.

``size`` is a memory limit ("512M", "2G", bytes), the cgroup v1 or v2 key as the host
has it; ``protect`` is our tag in the file, and `destroy` refuses a protected container
itself. ``reboot`` is a stop and a start (busybox's init ignores LXC's reboot signal while
udhcpc holds its sysinit).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, Field, ValidationError

from watchkeeper.document.fields import Duration, PositiveDuration, Strict
from watchkeeper.document.platforms import PlatformConfig
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

logger = logging.getLogger(__name__)

#: The file beside a container's config that holds our tags.
TAGS_FILE = "watchkeeper.json"
#: The interface the clone's veth is called inside the container.
INTERFACE = "eth0"
#: Seconds the static address must stay on the interface before a start counts as done
#: (udhcpc flushes it some milliseconds after the container's init starts).
ADDRESS_SETTLE = 0.5
ADDRESS_POLL = 0.1
#: The metrics `LxcProvider.metrics` knows.
METRICS = ("cpu_seconds", "memory_bytes", "state")
#: ``lxc-ls`` states, as `watchkeeper.infra.providers.base.STATES`.
_STATES = {
    "RUNNING": "running",
    "STOPPED": "stopped",
    "STARTING": "pending",
    "STOPPING": "stopping",
}
_SIZE = re.compile(r"[0-9]+[KMG]?")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
#: "lxc-start: c1: ../src/lxc/tools/lxc_start.c: main: 306 The container failed to start"
_STDERR_PREFIX = re.compile(r"^lxc-[a-z]+: [^:]*: [^:]*: \w+: \d+ ")
#: "lxc-start c2 20261203142927.246 ERROR network - ../src/lxc/network.c:fn:711 - Failed..."
_LOG_LINE = re.compile(r" - \S+:\w+:\d+ - (.*)$")


def _absolute(value: str) -> str:
    if not os.path.isabs(value):
        raise ValueError("must be an absolute path")
    return os.path.normpath(value)


def _network(value: str) -> str:
    try:
        network = ipaddress.IPv4Network(value)
    except ValueError as exc:
        raise ValueError(f"not an IPv4 network in CIDR form (10.213.20.0/24): {exc}") from None
    if network.prefixlen > 30:
        raise ValueError("the network needs room for hosts: /30 or larger")
    return str(network)


def _address(value: str) -> str:
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError as exc:
        raise ValueError(f"not an IPv4 address: {exc}") from None


def _not_negative(value: timedelta) -> timedelta:
    if value < timedelta(0):
        raise ValueError("must not be negative")
    return value


class LxcOptions(Strict):
    """Where the containers live and the network their clones join."""

    lxcpath: Annotated[str, AfterValidator(_absolute)] = Field(
        default="/var/lib/lxc", description="The containers' directory (lxc-* -P)."
    )
    bridge: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]{1,15}$")] = Field(
        description="The host bridge the clones' veth attach to (it must exist)."
    )
    network: Annotated[str, AfterValidator(_network)] = Field(
        description="The clones' network (CIDR); each slot gets a static address in it."
    )
    first_address: Annotated[int, Field(ge=1)] = Field(
        default=10,
        description="Host number of slot 0's address; slot i gets first_address + i.",
    )
    gateway: Annotated[str, AfterValidator(_address)] | None = Field(
        default=None, description="The clones' default route, when they need one."
    )
    snapshot: bool = Field(
        default=True,
        description="Clone as an overlayfs snapshot of the template (else a full copy).",
    )
    stop_timeout: Annotated[Duration, AfterValidator(_not_negative)] = Field(
        default="10s",
        validate_default=True,
        description="How long a stop waits for a clean shutdown before killing (0s: kill).",
    )
    timeout: PositiveDuration = Field(
        default="30s",
        validate_default=True,
        description="The longest any one lxc command, or a wait for a state, may take.",
    )


class LxcPlatform(PlatformConfig):
    """An LXC host: the workers of the zone that run on it make its containers."""

    provider: Literal["lxc"]
    options: LxcOptions


class LxcResourceOptions(Strict):
    """What a resource may set for its clones (``Resource.options``)."""

    first_address: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="This resource's block: slot i gets first_address + i."
    )


@dataclass(frozen=True, slots=True)
class _Record:
    """What the container's directory says: our file (if any) and its configured address."""

    name: str
    tags: Mapping[str, str] | None
    meta: Mapping[str, Any] = field(default_factory=dict)
    #: "10.213.20.12/24" from the config (or the file while the config is not written yet).
    address: str | None = None
    defined: bool = False


@dataclass(frozen=True, slots=True)
class _Listed:
    state: str
    addresses: tuple[str, ...]


def container_name(spec: MachineSpec) -> str:
    """``<slot>-<8 hex of sha256(owner)>``: unique per owner, a valid LXC and host name."""
    owner = hashlib.sha256(spec.owner.encode()).hexdigest()[:8]
    slot = re.sub(r"[^A-Za-z0-9_.\-]", "_", spec.slot) or "slot"
    if len(slot) > 54:
        slot = f"{slot[:45]}-{hashlib.sha256(slot.encode()).hexdigest()[:8]}"
    return f"{slot}-{owner}"


def slot_address(network: str, first: int, index: int, slot: str) -> ipaddress.IPv4Interface:
    """The static address of slot ``index``: host ``first + index`` of ``network``."""
    net = ipaddress.IPv4Network(network)
    host = first + index
    if index < 0 or host >= net.num_addresses - 1:
        last = net.num_addresses - 2
        raise ProviderError(
            f"network {net} has no address for {slot}: first_address {first} + index "
            f"{index} is past its last host number ({last})",
            code="AddressExhausted",
        )
    return ipaddress.IPv4Interface(f"{net.network_address + host}/{net.prefixlen}")


def _hwaddr(name: str) -> str:
    """A MAC fixed per container (LXC's 00:16:3e prefix), so neighbours' ARP stays right."""
    digest = hashlib.sha256(name.encode()).digest()
    return "00:16:3e:" + ":".join(f"{b:02x}" for b in digest[:3])


def _valid(name: str) -> str:
    """``name`` if it can be a container of lxcpath (never a path out of it)."""
    if not _NAME.fullmatch(name):
        raise ProviderError(f"{name!r} is not an LXC container name", code="InvalidParameter")
    return name


def _memory_key() -> str:
    """The config key of a memory limit here: cgroup v1's when the host mounts it."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return "lxc.cgroup2.memory.max"
    v1 = any(line.split(":")[0] != "0" and "memory" in line.split(":")[1] for line in lines)
    return "lxc.cgroup.memory.limit_in_bytes" if v1 else "lxc.cgroup2.memory.max"


def _clean(stderr: str) -> str:
    """lxc's messages without their source locations, one line each, joined."""
    lines = []
    for line in stderr.splitlines():
        line = line.strip()
        found = _LOG_LINE.search(line)
        text = found.group(1) if found else _STDERR_PREFIX.sub("", line)
        if text and text not in lines:
            lines.append(text)
    return "; ".join(lines)


@PROVIDERS.register
class LxcProvider:
    """Containers on this host, cloned from template containers; see the module docstring."""

    kind: ClassVar[str] = "lxc"
    Config: ClassVar[type[BaseModel]] = LxcPlatform
    capabilities: ClassVar[frozenset[str]] = frozenset(
        {
            "observe", "create", "destroy", "start", "stop", "reboot", "resize", "protect",
            "metrics", "adopt",
        }
    )  # fmt: skip

    def __init__(self, platform: Mapping[str, Any]) -> None:
        try:
            self.config = LxcPlatform.model_validate(dict(platform))
        except ValidationError as exc:
            raise ProviderError(
                f"invalid lxc platform: {exc}", code="InvalidConfiguration"
            ) from None
        self.options = self.config.options
        self.lxcpath = Path(self.options.lxcpath)
        self._timeout = self.options.timeout.total_seconds()
        self._locks: dict[str, asyncio.Lock] = {}
        #: Held while an address is chosen and reserved, so two creates never share one.
        self._allocating = asyncio.Lock()

    # --- the lifecycle --------------------------------------------------------------------

    async def observe(self, owner: str) -> Sequence[Machine]:
        records = await asyncio.to_thread(self._records)
        tagged = [r for r in records if r.tags is not None and r.tags.get(TAG_RESOURCE)]
        if not tagged:
            return []
        listed = await self._list()
        return [self._machine(record, listed.get(record.name)) for record in tagged]

    async def find(self, cloud_id: str) -> Machine | None:
        """One machine, from a fresh listing (the platform has no cheaper lookup)."""
        return next((m for m in await self.observe("") if m.cloud_id == cloud_id), None)

    async def create(self, spec: MachineSpec) -> Machine:
        if not spec.image:
            raise ProviderError(
                "an lxc resource needs an image: the name of a template container in "
                f"{self.lxcpath}",
                code="InvalidParameter",
            )
        try:
            extra = LxcResourceOptions.model_validate(dict(spec.options))
        except ValidationError as exc:
            raise ProviderError(
                f"invalid lxc resource options: {exc}", code="InvalidParameter"
            ) from None
        name = container_name(spec)
        first = extra.first_address or self.options.first_address
        address = slot_address(self.options.network, first, spec.index, spec.slot)
        if self.options.gateway and str(address.ip) == self.options.gateway:
            raise ProviderError(
                f"{spec.slot}'s address {address.ip} is the gateway; move first_address",
                code="InvalidParameter",
            )
        async with self._lock(name):
            made_dir = await self._reserve(spec, spec.image, name, address)
            if not (await asyncio.to_thread(self._record, name)).defined:
                await self._clone(spec.image, name, made_dir)
            await asyncio.to_thread(self._write_config, name, address, spec.size)
            await self._start(name, address)
            return await self._one(name)

    async def destroy(self, machine: Machine) -> None:
        name = _valid(machine.cloud_id)
        async with self._lock(name):
            record = await asyncio.to_thread(self._record, name)
            if record.tags is None and not record.defined:
                if (self.lxcpath / name).exists():
                    raise self._not_ours(machine, "destroy")
                return  # already gone
            self._check_ours(record, machine, "destroy")
            if record.tags is not None and record.tags.get(TAG_PROTECT) == "true":
                raise ProviderError(
                    f"container {name} is protected ({TAG_PROTECT} in its {TAGS_FILE}): "
                    "unprotect it first",
                    code="OperationNotPermitted",
                )
            if record.defined:
                await self._stop(name, kill=True)
                await self._run("lxc-destroy", "-n", name)
            if (self.lxcpath / name).exists():  # made before its clone: our file only
                await asyncio.to_thread(shutil.rmtree, self.lxcpath / name)

    async def start(self, machine: Machine) -> None:
        async with self._lock(machine.cloud_id):
            record = await self._owned(machine, "start")
            await self._start(record.name, self._configured(record))

    async def stop(self, machine: Machine) -> None:
        async with self._lock(machine.cloud_id):
            record = await self._owned(machine, "stop")
            await self._stop(record.name)

    async def reboot(self, machine: Machine) -> None:
        """A stop (clean, within ``stop_timeout``) and a start, address set again."""
        async with self._lock(machine.cloud_id):
            record = await self._owned(machine, "reboot")
            await self._stop(record.name)
            await self._start(record.name, self._configured(record))

    async def resize(self, machine: Machine, size: str) -> None:
        """Set the memory limit in the config, and on the running container at once."""
        if not _SIZE.fullmatch(size):
            raise ProviderError(
                f"an lxc size is a memory limit such as 512M or 2G, not {size!r}",
                code="InvalidParameter",
            )
        async with self._lock(machine.cloud_id):
            record = await self._owned(machine, "resize")
            await asyncio.to_thread(self._write_config, record.name, self._configured(record), size)
            await asyncio.to_thread(self._update_meta, record.name, {"size": size}, {})
            if (await self._state(record.name)) == "running":
                key = _memory_key().removeprefix("lxc.cgroup2.").removeprefix("lxc.cgroup.")
                await self._run("lxc-cgroup", "-n", record.name, key, size)

    async def protect(self, machine: Machine, on: bool) -> None:
        """Our protect tag in the container's file: LXC has no guard of its own."""
        async with self._lock(machine.cloud_id):
            record = await self._owned(machine, "protect")
            change = {TAG_PROTECT: "true"} if on else {TAG_PROTECT: None}
            await asyncio.to_thread(self._update_meta, record.name, {}, change)

    async def adopt(self, machine: Machine, tags: Mapping[str, str]) -> None:
        """Our tags in the file of a container that has none of an owner."""
        async with self._lock(machine.cloud_id):
            record = await asyncio.to_thread(self._record, _valid(machine.cloud_id))
            if not record.defined:
                raise ProviderError(f"container {machine.cloud_id} is not defined", code="NotFound")
            if (record.tags or {}).get(TAG_OWNER):
                raise ProviderError(
                    f"container {machine.cloud_id} already has an owner tag: not adopted",
                    code="OperationNotPermitted",
                )
            await asyncio.to_thread(self._update_meta, record.name, {}, dict(tags))

    async def metrics(self, machine: Machine, names: Sequence[str]) -> Sequence[Metric]:
        """``cpu_seconds`` and ``memory_bytes`` of its cgroup (while it runs), ``state``
        (1 running, 0 not)."""
        unknown = [n for n in names if n not in METRICS]
        if unknown:
            raise ProviderError(
                f"the lxc provider has no metric {', '.join(unknown)} "
                f"(it has {', '.join(METRICS)})",
                code="InvalidParameter",
            )
        wanted = names or METRICS
        info = await self._run("lxc-info", "-n", _valid(machine.cloud_id), "-s", "-S", "-H")
        fields = dict(
            (key.strip(), value.strip())
            for key, _, value in (line.partition(":") for line in info.splitlines())
        )
        running = fields.get("State") == "RUNNING"
        values: dict[str, Metric] = {
            "state": Metric(label="state", value=1.0 if running else 0.0, min=0.0, max=1.0)
        }
        if running and fields.get("CPU use", "").isdigit():
            seconds = int(fields["CPU use"]) / 1e9
            values["cpu_seconds"] = Metric(label="cpu_seconds", value=seconds, uom="s", min=0.0)
        if running and fields.get("Memory use", "").isdigit():
            memory = float(fields["Memory use"])
            values["memory_bytes"] = Metric(label="memory_bytes", value=memory, uom="B", min=0.0)
        return [values[name] for name in wanted if name in values]

    async def aclose(self) -> None:
        """Nothing to release: every call runs its own lxc command."""

    # --- steps ----------------------------------------------------------------------------

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    async def _reserve(
        self, spec: MachineSpec, image: str, name: str, address: ipaddress.IPv4Interface
    ) -> bool:
        """Make the container's directory with our file, unless this slot's is there
        already; True when it made it. The address must be free among all containers."""
        async with self._allocating:
            records = await asyncio.to_thread(self._records)
            mine = next((r for r in records if r.name == name), None)
            if mine is not None:
                tags = mine.tags or {}
                if (tags.get(TAG_OWNER), tags.get(TAG_RESOURCE), tags.get(TAG_SLOT)) != (
                    spec.owner,
                    spec.resource,
                    spec.slot,
                ):
                    raise ProviderError(
                        f"a container named {name} exists in {self.lxcpath} and is not "
                        f"{spec.slot} of this owner",
                        code="AlreadyExists",
                    )
                return False  # a create of this slot ran before: finish it
            for other in records:
                if other.address and other.address.split("/")[0] == str(address.ip):
                    raise ProviderError(
                        f"{spec.slot}'s address {address.ip} is taken by container "
                        f"{other.name}; give the resource another first_address",
                        code="AddressInUse",
                    )
            if not (self.lxcpath / image / "config").is_file():
                raise ProviderError(
                    f"template container {image!r} not found in {self.lxcpath} "
                    "(the resource's image names a container there)",
                    code="TemplateNotFound",
                )
            meta = {
                "tags": spec.tags(),
                "image": image,
                "size": spec.size,
                "address": str(address),
                "created_at": time.time(),
            }
            await asyncio.to_thread(self._make_dir, name, meta)
            return True

    async def _clone(self, image: str, name: str, made_dir: bool) -> None:
        argv = ["lxc-copy", "-n", image, "-N", name]
        if self.options.snapshot:
            argv += ["-s", "-B", "overlayfs"]
        try:
            await self._run(*argv)
        except ProviderError:
            if made_dir:
                if (self.lxcpath / name / "config").exists():
                    with contextlib.suppress(ProviderError):
                        await self._run("lxc-destroy", "-n", name)
                await asyncio.to_thread(shutil.rmtree, self.lxcpath / name, True)
            raise

    async def _start(self, name: str, address: ipaddress.IPv4Interface | None) -> None:
        """Start (a no-op when it runs), wait until RUNNING, then make the address stick."""
        log = self.lxcpath / name / "watchkeeper-start.log"
        await asyncio.to_thread(log.write_text, "")
        try:
            await self._run("lxc-start", "-n", name, "-o", str(log), "-l", "ERROR")
        except ProviderError as exc:
            details = _clean(await asyncio.to_thread(log.read_text))
            raise ProviderError(
                f"lxc-start {name}: {details or exc}", code=exc.code, retryable=exc.retryable
            ) from None
        seconds = str(max(1, round(self._timeout)))
        await self._run("lxc-wait", "-n", name, "-s", "RUNNING", "-t", seconds)
        if address is not None:
            await self._ensure_address(name, address)

    async def _ensure_address(self, name: str, address: ipaddress.IPv4Interface) -> None:
        """Put the static address back whenever it is missing, until it has stayed for
        `ADDRESS_SETTLE` seconds (a DHCP client in the template flushes it once)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        since: float | None = None
        attach = ("lxc-attach", "-n", name, "--clear-env", "--")
        while True:
            now = loop.time()
            present = str(address.ip) in (await self._run("lxc-info", "-n", name, "-iH")).split()
            if present:
                since = now if since is None else since
                if now - since >= ADDRESS_SETTLE:
                    return
            else:
                since = None
                logger.debug("setting %s on %s again", address, name)
                await self._run(
                    *attach, "ip", "addr", "add", str(address), "dev", INTERFACE, ok=(2,)
                )
                if self.options.gateway:
                    await self._run(
                        *attach, "ip", "route", "replace", "default", "via",
                        self.options.gateway, "dev", INTERFACE,
                    )  # fmt: skip
            if now > deadline:
                raise ProviderError(
                    f"address {address} did not stay on {name}'s {INTERFACE} within "
                    f"{self._timeout:g}s",
                    code="AddressNotSet",
                    retryable=True,
                )
            await asyncio.sleep(ADDRESS_POLL)

    async def _stop(self, name: str, *, kill: bool = False) -> None:
        """Stop cleanly within ``stop_timeout``, then kill; a stopped container is fine."""
        grace = round(self.options.stop_timeout.total_seconds())
        how = ["-k"] if kill or grace == 0 else ["-t", str(grace)]
        await self._run("lxc-stop", "-n", name, *how, ok=(2,), seconds=self._timeout + grace)

    async def _state(self, name: str) -> str:
        raw = (await self._run("lxc-info", "-n", name, "-sH")).strip()
        return _STATES.get(raw, "unknown")

    async def _list(self) -> dict[str, _Listed]:
        """Name -> state and addresses, from one ``lxc-ls -f``."""
        out = await self._run("lxc-ls", "-f", "-F", "NAME,STATE,IPV4")
        listed = {}
        for line in out.splitlines()[1:]:
            words = line.replace(",", " ").split()
            if len(words) >= 2:
                addresses = tuple(w for w in words[2:] if w != "-")
                listed[words[0]] = _Listed(_STATES.get(words[1], "unknown"), addresses)
        return listed

    async def _one(self, name: str) -> Machine:
        record = await asyncio.to_thread(self._record, name)
        return self._machine(record, (await self._list()).get(name))

    async def _owned(self, machine: Machine, what: str) -> _Record:
        record = await asyncio.to_thread(self._record, _valid(machine.cloud_id))
        if not record.defined and record.tags is None:
            raise ProviderError(
                f"container {machine.cloud_id} is not in {self.lxcpath}", code="NotFound"
            )
        self._check_ours(record, machine, what)
        if not record.defined:
            raise ProviderError(
                f"container {machine.cloud_id} is not made yet (its create did not finish)",
                code="IncorrectState",
            )
        return record

    def _check_ours(self, record: _Record, machine: Machine, what: str) -> None:
        owner = (record.tags or {}).get(TAG_OWNER, "")
        if not owner or owner != machine.owner:
            raise self._not_ours(machine, what)

    def _not_ours(self, machine: Machine, what: str) -> ProviderError:
        return ProviderError(
            f"container {machine.cloud_id} does not carry the owner tag {machine.owner!r} "
            f"in its {TAGS_FILE}: not ours to {what}",
            code="OperationNotPermitted",
        )

    def _configured(self, record: _Record) -> ipaddress.IPv4Interface | None:
        return ipaddress.IPv4Interface(record.address) if record.address else None

    def _machine(self, record: _Record, listed: _Listed | None) -> Machine:
        tags = dict(record.tags or {})
        # Not listed: its create has not cloned it yet (or lxc-ls cannot read it).
        state = listed.state if listed else ("pending" if not record.defined else "unknown")
        address = record.address.split("/")[0] if record.address else None
        if listed is not None and state == "running" and address not in listed.addresses:
            # What it really has: a running container without its address is unreachable.
            address = listed.addresses[0] if listed.addresses else None
        created = record.meta.get("created_at")
        return Machine(
            cloud_id=record.name,
            resource=tags.get(TAG_RESOURCE, ""),
            slot=tags.get(TAG_SLOT, ""),
            owner=tags.get(TAG_OWNER, ""),
            op=tags.get(TAG_OP, ""),
            state=state,
            size=_text(record.meta.get("size")),
            image=_text(record.meta.get("image")),
            address=address,
            protected=tags.get(TAG_PROTECT) == "true",
            tags=tags,
            created_at=float(created) if isinstance(created, int | float) else None,
        )

    # --- files (run in a thread) ----------------------------------------------------------

    def _records(self) -> list[_Record]:
        try:
            entries = sorted(os.scandir(self.lxcpath), key=lambda e: e.name)
        except FileNotFoundError:
            raise ProviderError(f"lxcpath {self.lxcpath} does not exist", code="NotFound") from None
        except OSError as exc:
            raise ProviderError(f"cannot list {self.lxcpath}: {exc.strerror}") from None
        return [self._record(e.name) for e in entries if e.is_dir(follow_symlinks=False)]

    def _record(self, name: str) -> _Record:
        directory = self.lxcpath / name
        meta: dict[str, Any] = {}
        tags: dict[str, str] | None = None
        path = directory / TAGS_FILE
        try:
            raw = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise ProviderError(f"cannot read {path}: {exc.strerror}") from None
        else:
            meta, tags = _parse_meta(path, raw)
        address = meta.get("address") if isinstance(meta.get("address"), str) else None
        try:
            config = (directory / "config").read_text(encoding="utf-8")
        except FileNotFoundError:
            return _Record(name, tags, meta, address, defined=False)
        except OSError as exc:
            raise ProviderError(f"cannot read {directory / 'config'}: {exc.strerror}") from None
        for line in config.splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "lxc.net.0.ipv4.address":
                address = value.strip()
        return _Record(name, tags, meta, address, defined=True)

    def _make_dir(self, name: str, meta: Mapping[str, Any]) -> None:
        directory = self.lxcpath / name
        try:
            directory.mkdir(mode=0o770)
        except FileExistsError:
            raise ProviderError(
                f"a container named {name} exists in {self.lxcpath} and is not ours",
                code="AlreadyExists",
            ) from None
        _write_json(directory / TAGS_FILE, meta)

    def _update_meta(
        self, name: str, changes: Mapping[str, Any], tags: Mapping[str, str | None]
    ) -> None:
        path = self.lxcpath / name / TAGS_FILE
        meta, current = _parse_meta(path, path.read_text(encoding="utf-8"))
        merged = dict(current or {})
        for key, value in tags.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        _write_json(path, {**meta, **changes, "tags": merged})

    def _write_config(
        self, name: str, address: ipaddress.IPv4Interface | None, size: str | None
    ) -> None:
        """The clone's config with our network (and memory limit) in place of the
        template's: every ``lxc.net.*`` line is replaced."""
        path = self.lxcpath / name / "config"
        memory = _memory_key()
        keep = [
            line
            for line in path.read_text(encoding="utf-8").splitlines()
            if not line.strip().startswith(("lxc.net.", "# watchkeeper:"))
            and line.partition("=")[0].strip()
            not in ("lxc.cgroup.memory.limit_in_bytes", "lxc.cgroup2.memory.max")
        ]
        ours = [
            "# watchkeeper: network and limits of this clone (the lxc provider rewrites these)",
            "lxc.net.0.type = veth",
            f"lxc.net.0.link = {self.options.bridge}",
            "lxc.net.0.flags = up",
            f"lxc.net.0.name = {INTERFACE}",
            f"lxc.net.0.hwaddr = {_hwaddr(name)}",
        ]
        if address is not None:
            ours.append(f"lxc.net.0.ipv4.address = {address}")
        if self.options.gateway:
            ours.append(f"lxc.net.0.ipv4.gateway = {self.options.gateway}")
        if size:
            ours.append(f"{memory} = {size}")
        _write_text(path, "\n".join([*keep, *ours]) + "\n")

    # --- commands -------------------------------------------------------------------------

    async def _run(
        self, tool: str, *args: str, ok: tuple[int, ...] = (), seconds: float | None = None
    ) -> str:
        """``tool -P lxcpath args``'s stdout; a failure (exit status not 0 nor in ``ok``)
        is a `ProviderError` with lxc's own message."""
        argv = (tool, "-P", str(self.lxcpath), *args)
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except FileNotFoundError:
            raise ProviderError(
                f"{tool} is not installed on this worker (apt-get install lxc)",
                code="NotInstalled",
            ) from None
        try:
            async with asyncio.timeout(seconds or self._timeout):
                out, err = await process.communicate()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise ProviderError(
                f"{tool} {' '.join(args)} took longer than {seconds or self._timeout:g}s",
                code="Timeout",
                retryable=True,
            ) from None
        if process.returncode and process.returncode not in ok:
            message = _clean(err.decode(errors="replace")) or f"exit status {process.returncode}"
            missing = "doesn't exist" in message or "does not exist" in message
            name = args[args.index("-n") + 1] if "-n" in args[:-1] else ""
            raise ProviderError(
                f"{tool} {name}: {message}" if name else f"{tool}: {message}",
                code="NotFound" if missing else "LxcError",
            )
        return out.decode(errors="replace")


def _parse_meta(path: Path, raw: str) -> tuple[dict[str, Any], dict[str, str] | None]:
    """Our file's fields and its tags; a file we cannot read fails the observation."""
    try:
        meta = json.loads(raw)
    except ValueError as exc:
        raise ProviderError(f"{path} is not JSON: {exc}", code="InvalidTags") from None
    tags = meta.get("tags") if isinstance(meta, dict) else None
    if not isinstance(tags, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in tags.items()
    ):
        raise ProviderError(
            f'{path} must be an object with "tags": {{string: string}}', code="InvalidTags"
        )
    return meta, tags


def _write_json(path: Path, value: Mapping[str, Any]) -> None:
    _write_text(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def _write_text(path: Path, text: str) -> None:
    """Replace ``path`` whole (a reader never sees half a file)."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


__all__ = ["LxcOptions", "LxcPlatform", "LxcProvider", "container_name", "slot_address"]
