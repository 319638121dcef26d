"""Slots become hosts: each machine a resource asks for is a host of the document.

``infrastructure: [{"name": "web", "count": 3, ...}]`` gives the hosts ``web-0`` ..
``web-2``: the resource's labels plus ``watchkeeper.resource`` and
``watchkeeper.platform``, the zone of ``host.zone`` or else the platform's, the resource's
host check and parents. Label selectors and host lists bind services to them like any
host, and ``watchkeeper plan`` shows the hosts that will appear. Their address is empty
here: the manager fills it from the platform's inventory, and until a machine has one
its checks wait as "not provisioned yet".

Slot hosts are made after shape validation and before the rules across objects, so a
service may name ``web-0`` and a clash with a declared host is reported on the resource.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from watchkeeper.document import models

#: The labels every slot host carries (`watchkeeper.infra.desired` reads them too).
RESOURCE_LABEL = "watchkeeper.resource"
PLATFORM_LABEL = "watchkeeper.platform"


def slot_name(resource: str, index: int) -> str:
    """``web-2``: the slot's name, which is also its host's."""
    return f"{resource}-{index}"


def slot_index(resource: str, slot: str) -> int | None:
    """2 for ``web-2`` of ``web``; None when ``slot`` is not one of the resource's."""
    prefix = resource + "-"
    if not slot.startswith(prefix):
        return None
    tail = slot[len(prefix) :]
    return int(tail) if tail.isdigit() and (tail == "0" or not tail.startswith("0")) else None


def slot_hosts(
    resources: Sequence[tuple[int, Any]],
    platforms: Sequence[tuple[int, Any]],
    cache: dict[str, tuple[Any, Any, list[models.Host]]] | None = None,
) -> list[tuple[int, models.Host]]:
    """The hosts of every slot, each with the index of its resource in the document.

    ``cache`` maps a resource name to (resource, platform, hosts) of the last call: the
    same model objects give back the same host objects, so the snapshot's caches, keyed
    by identity, keep working for documents with infrastructure.
    """
    zones = {p.name: p.zone for _, p in platforms}
    platform_objects = {p.name: p for _, p in platforms}
    out: list[tuple[int, models.Host]] = []
    used: dict[str, tuple[Any, Any, list[models.Host]]] = {}
    for index, resource in resources:
        platform = platform_objects.get(resource.platform)
        hit = cache.get(resource.name) if cache is not None else None
        if hit is None or hit[0] is not resource or hit[1] is not platform:
            zone = resource.host.zone or zones.get(resource.platform, "")
            labels = {
                **resource.labels,
                RESOURCE_LABEL: resource.name,
                PLATFORM_LABEL: resource.platform,
            }
            hosts = [
                models.Host.model_construct(
                    name=slot_name(resource.name, i),
                    address="",
                    zone=zone,
                    display_name=None,
                    labels=labels,
                    parents=list(resource.host.parents),
                    check=resource.host.check,
                )
                for i in range(resource.count)
            ]
            hit = (resource, platform, hosts)
        used[resource.name] = hit
        out.extend((index, host) for host in hit[2])
    if cache is not None:
        cache.clear()
        cache.update(used)
    return out
