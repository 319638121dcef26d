"""A readable diff of two stored documents: by section and object name, then by field.

What the configuration pages draw and ``GET /api/v1/config/diff`` answers: unlike
`watchkeeper.document.diff` (which compares hashes to plan an import), this walks the
documents as the operator wrote them, field by field, with JSON pointers. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldChange:
    """One value that differs between two versions of an object.

    ``pointer`` is a JSON pointer inside the object (``/check/port``); ``change`` is
    ``added`` (``old`` is None), ``removed`` (``new`` is None) or ``changed``.
    """

    pointer: str
    change: str
    old: Any = None
    new: Any = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectChange:
    """A named object present in both versions, with the fields that differ."""

    name: str
    fields: list[FieldChange]


@dataclass(frozen=True, slots=True, kw_only=True)
class SectionDiff:
    """What one section of the document (``hosts``, ``services``...) gained, lost, changed."""

    section: str
    added: list[str]
    removed: list[str]
    changed: list[ObjectChange]


@dataclass(frozen=True, slots=True, kw_only=True)
class DocumentDiff:
    """A readable diff of two documents: by section and object name, then by field.

    ``fields`` holds the changes of top-level values that are not sections of named
    objects (``/schema``, say).
    """

    sections: list[SectionDiff]
    fields: list[FieldChange]

    @property
    def empty(self) -> bool:
        return not self.sections and not self.fields


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def field_changes(old: Any, new: Any, pointer: str = "") -> list[FieldChange]:
    """Every leaf that differs between two JSON values, by JSON pointer (lists by index)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[FieldChange] = []
        for name in sorted(old.keys() | new.keys(), key=str):
            at = f"{pointer}/{_escape(str(name))}"
            if name not in new:
                out.append(FieldChange(pointer=at, change="removed", old=old[name]))
            elif name not in old:
                out.append(FieldChange(pointer=at, change="added", new=new[name]))
            else:
                out.extend(field_changes(old[name], new[name], at))
        return out
    if isinstance(old, list) and isinstance(new, list):
        out = []
        for index in range(max(len(old), len(new))):
            at = f"{pointer}/{index}"
            if index >= len(new):
                out.append(FieldChange(pointer=at, change="removed", old=old[index]))
            elif index >= len(old):
                out.append(FieldChange(pointer=at, change="added", new=new[index]))
            else:
                out.extend(field_changes(old[index], new[index], at))
        return out
    if old == new and type(old) is type(new):
        return []
    return [FieldChange(pointer=pointer or "/", change="changed", old=old, new=new)]


def _named(value: Any) -> dict[str, Any] | None:
    """A section's objects by name, or None when the value is not a list of named objects."""
    if not isinstance(value, list):
        return None
    named: dict[str, Any] = {}
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            return None
        named[item["name"]] = item
    return named


def config_diff(old: dict[str, Any], new: dict[str, Any]) -> DocumentDiff:
    """Compare two stored documents section by section (see `DocumentDiff`)."""
    sections: list[SectionDiff] = []
    fields: list[FieldChange] = []
    for section in sorted(old.keys() | new.keys()):
        before, after = old.get(section), new.get(section)
        objects_before = _named([] if before is None else before)
        objects_after = _named([] if after is None else after)
        if objects_before is None or objects_after is None:
            if section not in new:
                fields.append(
                    FieldChange(pointer=f"/{_escape(section)}", change="removed", old=before)
                )
            elif section not in old:
                fields.append(
                    FieldChange(pointer=f"/{_escape(section)}", change="added", new=after)
                )
            else:
                fields.extend(field_changes(before, after, f"/{_escape(section)}"))
            continue
        changed = [
            ObjectChange(name=name, fields=found)
            for name in sorted(objects_before.keys() & objects_after.keys())
            if (found := field_changes(objects_before[name], objects_after[name]))
        ]
        diff = SectionDiff(
            section=section,
            added=sorted(objects_after.keys() - objects_before.keys()),
            removed=sorted(objects_before.keys() - objects_after.keys()),
            changed=changed,
        )
        if diff.added or diff.removed or diff.changed:
            sections.append(diff)
    return DocumentDiff(sections=sections, fields=fields)
