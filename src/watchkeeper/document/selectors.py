"""Which hosts a service runs on: a list of names or a label selector, resolved by index."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from watchkeeper.document import models


class HostIndex:
    """Hosts indexed by label pair and zone, so selectors cost O(matches), not O(hosts)."""

    def __init__(self, hosts: Iterable[models.Host]) -> None:
        self.hosts: dict[str, models.Host] = {}
        self._by_label: dict[tuple[str, str], set[str]] = defaultdict(set)
        self._by_zone: dict[str, set[str]] = defaultdict(set)
        for host in hosts:
            self.hosts.setdefault(host.name, host)
            self._by_zone[host.zone].add(host.name)
            for pair in host.labels.items():
                self._by_label[pair].add(host.name)

    def select(self, selector: models.LabelSelector) -> list[str]:
        """Names of the hosts that carry every label of the selector (and its zone, if set)."""
        sets = [self._by_label.get(pair, set()) for pair in selector.labels.items()]
        if selector.zone is not None:
            sets.append(self._by_zone.get(selector.zone, set()))
        if not sets:
            return sorted(self.hosts)
        sets.sort(key=len)
        return sorted(set.intersection(*sets))

    def bind(self, binding: list[str] | models.LabelSelector) -> list[str]:
        """Resolve a service's ``hosts`` field to the names of existing hosts."""
        if isinstance(binding, list):
            return [name for name in dict.fromkeys(binding) if name in self.hosts]
        return self.select(binding)
