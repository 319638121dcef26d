"""What the document wants of the infrastructure, as plain values the planner reads.

Made from the imported ``platforms`` and ``infrastructure`` objects (their JSON as the
store keeps it), so the manager needs no provider plugin to plan: providers run on the
workers of a platform's zone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from watchkeeper.document.durations import parse_duration
from watchkeeper.document.slots import slot_name

DEFAULT_POLL = 60.0


@dataclass(frozen=True, slots=True, kw_only=True)
class PlatformLimits:
    max_create: int = 20
    max_destroy: int = 2
    calls_per_second: float = 5.0
    failures: int = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class DesiredPlatform:
    """A platform of the document: where its jobs go and how often it is observed."""

    name: str
    provider: str
    zone: str
    poll: float = DEFAULT_POLL
    limits: PlatformLimits = field(default_factory=PlatformLimits)
    #: The document's platform object, as sent to the zone's workers (credentials are a
    #: reference there, never a value).
    spec: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> DesiredPlatform:
        limits = spec.get("limits") or {}
        return cls(
            name=str(spec["name"]),
            provider=str(spec.get("provider", "")),
            zone=str(spec.get("zone", "")),
            poll=parse_duration(spec["poll"]).total_seconds() if spec.get("poll") else DEFAULT_POLL,
            limits=PlatformLimits(
                max_create=int(limits.get("max_create", 20)),
                max_destroy=int(limits.get("max_destroy", 2)),
                calls_per_second=float(limits.get("calls_per_second", 5.0)),
                failures=int(limits.get("failures", 3)),
            ),
            spec=dict(spec),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class DesiredResource:
    """A resource of the document: ``count`` slots of one shape on one platform."""

    name: str
    platform: str
    count: int
    size: str | None = None
    image: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    update: str = "in-place"
    drift: str = "repair"
    protect: bool = False
    confirm: frozenset[str] = frozenset({"destroy"})
    address: str = "private"

    @property
    def slots(self) -> list[str]:
        return [slot_name(self.name, i) for i in range(self.count)]

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> DesiredResource:
        host = spec.get("host") or {}
        return cls(
            name=str(spec["name"]),
            platform=str(spec["platform"]),
            count=int(spec.get("count", 1)),
            size=spec.get("size"),
            image=spec.get("image"),
            labels=dict(spec.get("labels") or {}),
            options=dict(spec.get("options") or {}),
            update=str(spec.get("update", "in-place")),
            drift=str(spec.get("drift", "repair")),
            protect=bool(spec.get("protect", False)),
            confirm=frozenset(spec.get("confirm", ["destroy"])),
            address=str(host.get("address", "private")),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Desired:
    """The infrastructure part of one configuration."""

    platforms: Mapping[str, DesiredPlatform] = field(default_factory=dict)
    resources: Mapping[str, DesiredResource] = field(default_factory=dict)

    @classmethod
    def from_specs(
        cls, platforms: Iterable[Mapping[str, Any]], resources: Iterable[Mapping[str, Any]]
    ) -> Desired:
        return cls(
            platforms={str(p["name"]): DesiredPlatform.from_spec(p) for p in platforms},
            resources={str(r["name"]): DesiredResource.from_spec(r) for r in resources},
        )

    def on(self, platform: str) -> list[DesiredResource]:
        return [r for r in self.resources.values() if r.platform == platform]

    def slot_count(self, platform: str) -> int:
        return sum(r.count for r in self.on(platform))

    def to_json(self) -> dict[str, Any]:
        return {
            "platforms": [dict(p.spec) for p in self.platforms.values()],
            "resources": [_resource_json(r) for r in self.resources.values()],
        }


def _resource_json(r: DesiredResource) -> dict[str, Any]:
    return {
        "name": r.name,
        "platform": r.platform,
        "count": r.count,
        "size": r.size,
        "image": r.image,
        "labels": dict(r.labels),
        "options": dict(r.options),
        "update": r.update,
        "drift": r.drift,
        "protect": r.protect,
        "confirm": sorted(r.confirm),
        "host": {"address": r.address},
    }
