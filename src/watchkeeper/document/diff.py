"""What an import would add, change and remove: a pure comparison of record hashes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from watchkeeper.document.normalize import Hashes


@dataclass(frozen=True, slots=True, kw_only=True)
class Delta:
    """Names (or check keys) added, changed and removed within one kind."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)

    def counts(self) -> dict[str, int]:
        return {
            "added": len(self.added),
            "changed": len(self.changed),
            "removed": len(self.removed),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigDiff:
    """Per-kind deltas of the named objects, plus the delta of the expanded checks."""

    objects: dict[str, Delta]
    checks: Delta

    @property
    def empty(self) -> bool:
        return not self.checks and not any(self.objects.values())

    def summary(self) -> dict[str, Any]:
        """Counts per kind (only kinds that changed), as stored with each version."""
        out: dict[str, Any] = {k: d.counts() for k, d in self.objects.items() if d}
        if self.checks:
            out["checks"] = self.checks.counts()
        return out


def compare(old: Mapping[str, str], new: Mapping[str, str]) -> Delta:
    """Compare two ``name -> hash`` maps; output lists are sorted for stable reports."""
    return Delta(
        added=sorted(k for k in new if k not in old),
        changed=sorted(k for k, h in new.items() if k in old and old[k] != h),
        removed=sorted(k for k in old if k not in new),
    )


def diff(old: Hashes, new: Hashes) -> ConfigDiff:
    kinds = dict.fromkeys([*old.objects, *new.objects])
    return ConfigDiff(
        objects={k: compare(old.objects.get(k, {}), new.objects.get(k, {})) for k in kinds},
        checks=compare(old.checks, new.checks),
    )


def summary_text(summary: Mapping[str, Any]) -> str:
    """One line for people: ``hosts +1 ~0 -0, checks +10 ~0 -0`` (a `summary()` value)."""
    parts = [f"{k} +{c['added']} ~{c['changed']} -{c['removed']}" for k, c in summary.items()]
    return ", ".join(parts) or "no changes"
