"""Render the document reference (Markdown) from the JSON Schema, so docs cannot drift.

``docs/reference/document.md`` is this module's output; a test regenerates and compares it.
"""

from __future__ import annotations

from typing import Any

from watchkeeper.document import models
from watchkeeper.document.jsonschema import json_schema

_INTRO = """# Document reference: `watchkeeper/v1`

Generated from the JSON Schema (`watchkeeper schema`, committed as
`docs/schema/watchkeeper-v1.json`) by `watchkeeper schema --format markdown`. Do not edit by
hand: change the models in `src/watchkeeper/document/models.py` and regenerate.

Every object rejects unknown fields. Durations are strings such as `30s`, `5m`, `1h30m`
(units `ms s m h d w`). Fields marked *secret* take a reference, `env:NAME` or
`file:/path`, resolved on the worker that needs it; a literal secret is an error.
"""


def reference_markdown() -> str:
    schema = json_schema()
    defs: dict[str, Any] = schema["$defs"]
    out = [_INTRO, "## Document (top level)\n", _table(schema, defs)]
    order = [_title_of(models.SECTIONS[s]) for s in models.SECTIONS]
    names = [n for n in order if n in defs] + sorted(n for n in defs if n not in order)
    for name in names:
        out.append(f"## {name}\n")
        description = defs[name].get("description")
        if description:
            out.append(description.strip() + "\n")
        out.append(_table(defs[name], defs))
    return "\n".join(out)


def _title_of(model: Any) -> str:
    return getattr(model, "__name__", "")


def _table(obj: dict[str, Any], defs: dict[str, Any]) -> str:
    required = set(obj.get("required", []))
    rows = ["| field | type | required | default | description |", "|---|---|---|---|---|"]
    for field, spec in obj.get("properties", {}).items():
        default = spec.get("default")
        rows.append(
            "| `{}` | {} | {} | {} | {} |".format(
                field,
                _type(spec, defs),
                "yes" if field in required else "",
                "" if default is None or default in ({}, []) else f"`{_json(default)}`",
                _describe(spec),
            )
        )
    return "\n".join(rows) + "\n"


def _describe(spec: dict[str, Any]) -> str:
    text = str(spec.get("description", "")).replace("|", "\\|").replace("\n", " ")
    pattern = spec.get("pattern")
    if pattern and "secret" in text.lower():
        return "*secret* " + text
    return text


def _type(spec: dict[str, Any], defs: dict[str, Any]) -> str:
    if "$ref" in spec:
        name = spec["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "const" in spec:
        return f"`{_json(spec['const'])}`"
    if "enum" in spec:
        return " \\| ".join(f"`{_json(v)}`" for v in spec["enum"])
    for key in ("oneOf", "anyOf"):
        if key in spec:
            kinds = [_type(s, defs) for s in spec[key] if s.get("type") != "null"]
            return " \\| ".join(kinds)
    kind = spec.get("type", "any")
    if kind == "array":
        return f"list of {_type(spec.get('items', {}), defs)}"
    if kind == "object" and "additionalProperties" in spec:
        values = spec["additionalProperties"]
        inner = _type(values, defs) if isinstance(values, dict) else "any"
        return f"map of string to {inner}"
    if spec.get("pattern", "").startswith("^(?:\\d"):
        return "duration"
    return str(kind)


def _json(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)
