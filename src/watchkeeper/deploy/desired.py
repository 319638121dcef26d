"""The deployments in force, as targets: one per deployed host, with its digest. Pure.

A target's digest covers everything its run depends on: the deployment object, the
host's address, zone and labels (templates see them), the manager's version (the agent
installed) and host key (the agent's pin). A new digest means the last plan no longer
holds: the host is checked again, and a rollout with a new digest starts afresh.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from watchkeeper.deploy.rollout import Rollout, Target


@dataclass(frozen=True, slots=True)
class DesiredDeployment:
    name: str
    spec: Mapping[str, Any]
    targets: tuple[Target, ...]
    hosts: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def rollout(self) -> Rollout:
        spec = self.spec
        return Rollout(
            name=self.name,
            drift="report" if spec.get("drift") == "report" else "repair",
            every=_seconds(spec.get("every"), 600.0),
            max_concurrent=int(spec.get("max_concurrent", 5)),
            max_failures=int(spec.get("max_failures", 0)),
        )


def bind(spec: Mapping[str, Any], hosts: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The hosts a deployment names, or those its selector matches, in document order."""
    bound = spec.get("hosts")
    if isinstance(bound, list):
        return [str(name) for name in bound if name in hosts]
    selector = bound if isinstance(bound, Mapping) else {}
    labels = selector.get("labels") or {}
    zone = selector.get("zone")
    return [
        name
        for name, host in hosts.items()
        if (zone is None or host.get("zone") == zone)
        and all((host.get("labels") or {}).get(k) == v for k, v in labels.items())
    ]


def digest(
    spec: Mapping[str, Any], host: Mapping[str, Any], *, version: str, fingerprint: str
) -> str:
    material = {
        "deployment": spec,
        "host": {k: host.get(k) for k in ("name", "address", "zone", "labels")},
        "version": version,
        "fingerprint": fingerprint,
    }
    return hashlib.sha256(orjson.dumps(material, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def desired(
    deployments: Iterable[Mapping[str, Any]],
    hosts: Iterable[Mapping[str, Any]],
    *,
    version: str,
    fingerprint: str,
) -> dict[str, DesiredDeployment]:
    """Deployment name -> its targets, from the document's deployment and host objects."""
    by_name = {str(h["name"]): h for h in hosts}
    found: dict[str, DesiredDeployment] = {}
    for spec in deployments:
        name = str(spec["name"])
        bound = bind(spec, by_name)
        targets = tuple(
            Target(
                deployment=name,
                host=host,
                address=str(by_name[host].get("address", "")),
                zone=str(by_name[host].get("zone", "")),
                digest=digest(spec, by_name[host], version=version, fingerprint=fingerprint),
            )
            for host in bound
        )
        found[name] = DesiredDeployment(name, spec, targets, {h: by_name[h] for h in bound})
    return found


def _seconds(value: Any, default: float) -> float:
    """A duration as the store keeps it (seconds, or "10m" text) in seconds."""
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value:
        from watchkeeper.document.durations import parse_duration

        return parse_duration(value).total_seconds()
    return default
