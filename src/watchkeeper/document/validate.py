"""Validate a candidate document and report every problem with its JSON pointer.

Each object is validated on its own, so one malformed service does not hide the problems of
the others, and cross-object rules still run over everything that parsed. Validated objects
are cached by the hash of their raw JSON: a one-service change to a large document only
re-validates that service.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import BaseModel, TypeAdapter, ValidationError

from watchkeeper import plugins
from watchkeeper.document import models, semantics, slots
from watchkeeper.document.problems import (
    Problem,
    Severity,
    did_you_mean,
    pointer,
    sort_problems,
)
from watchkeeper.errors import DocumentUnreadable

#: Candidates above this size are refused before parsing (sources apply their own cap too).
MAX_DOCUMENT_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class Validated:
    """The outcome of validating one candidate."""

    raw: Mapping[str, Any]
    content_hash: str
    problems: list[Problem]
    document: models.Document | None = None
    #: id(validated object) -> (its raw JSON, the digest of its JSON): lets the
    #: snapshot reuse what validation already computed instead of dumping models again.
    origins: Mapping[int, tuple[Any, bytes]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.document is not None

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity is Severity.WARNING]


def parse_json(body: bytes | str) -> dict[str, Any]:
    """Parse a candidate's bytes; raise `DocumentUnreadable` with the position of a syntax error."""
    if len(body) > MAX_DOCUMENT_BYTES:
        raise DocumentUnreadable(f"document is {len(body)} bytes, over {MAX_DOCUMENT_BYTES}")
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError as exc:  # a binary file, or a legacy encoding
            raise DocumentUnreadable(
                f"not a UTF-8 JSON document: byte 0x{body[exc.start]:02x} at offset "
                f"{exc.start} is not UTF-8"
            ) from exc
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise DocumentUnreadable(f"not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise DocumentUnreadable(f"the document must be a JSON object, not {type(data).__name__}")
    return data


def content_hash(raw: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON (sorted keys): equal documents hash equal, however written."""
    return hashlib.sha256(orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass(slots=True)
class ValidationCache:
    """Validated objects of the last candidate, keyed by (section, name).

    An object whose serialised raw JSON equals the cached bytes is reused without validating
    it again: shape validation of one object depends on nothing else, so this is exact. The
    bytes are kept, not the dict, so a caller mutating its input cannot poison the cache.
    """

    entries: dict[tuple[str, Any], tuple[bytes, Any]] = field(default_factory=dict)
    #: The slot hosts of each resource (`watchkeeper.document.slots.slot_hosts`).
    slots: dict[str, tuple[Any, Any, list[Any]]] = field(default_factory=dict)
    hits: int = 0
    misses: int = 0

    def swap(self, used: dict[tuple[str, Any], tuple[bytes, Any]]) -> None:
        """Keep only what the latest candidate used, so the cache never outgrows a document."""
        self.entries = used


_ADAPTERS: dict[str, TypeAdapter[Any]] = {
    name: TypeAdapter(model) for name, model in models.SECTIONS.items()
}


def validate(raw: Mapping[str, Any], *, cache: ValidationCache | None = None) -> Validated:
    """Validate a parsed candidate: shape of each object, then the rules across objects."""
    problems: list[Problem] = []
    doc_hash = content_hash(raw)
    problems.extend(_check_top_level(raw))
    if any(p.pointer == "/schema" for p in problems) and raw.get("schema") is not None:
        return Validated(raw=raw, content_hash=doc_hash, problems=problems)

    defaults = _defaults(raw.get("defaults"), problems)
    sections: dict[str, list[tuple[int, Any]]] = {}
    broken: dict[str, set[str]] = {}
    used: dict[tuple[str, Any], tuple[bytes, Any]] = {}
    origins: dict[int, tuple[Any, bytes]] = {}
    for section, adapter in _ADAPTERS.items():
        items = raw.get(section, [])
        sections[section], broken[section] = [], set()
        if not isinstance(items, list):
            continue
        for index, item in enumerate(items):
            name = item.get("name") if isinstance(item, dict) else None
            key = (section, name if isinstance(name, str) else None)
            hit = cache.entries.get(key) if cache is not None and key[1] is not None else None
            digest = _digest(item)
            if hit is not None and digest and hit[0] == digest:
                sections[section].append((index, hit[1]))
                origins[id(hit[1])] = (item, digest)
                used[key] = hit
                cache.hits += 1  # type: ignore[union-attr]
                continue
            try:
                obj = adapter.validate_python(item)
            except ValidationError as exc:
                problems.extend(_shape_problems(exc, section, index, item))
                if isinstance(key[1], str):
                    broken[section].add(key[1])
                    if section == "infrastructure":  # its slots' hosts are broken too
                        broken.setdefault("hosts", set()).update(_slot_names(key[1], item))
                continue
            if cache is not None:
                cache.misses += 1
            sections[section].append((index, obj))
            if digest:
                origins[id(obj)] = (item, digest)
            used[key] = (digest, obj)
    if cache is not None:
        cache.swap(used)

    slot_hosts = slots.slot_hosts(
        sections["infrastructure"],
        sections["platforms"],
        cache.slots if cache is not None else None,
    )
    problems.extend(semantics.check(sections, broken, slot_hosts))
    problems = sort_problems(problems)
    if any(p.severity is Severity.ERROR for p in problems):
        return Validated(raw=raw, content_hash=doc_hash, problems=problems)
    fields: dict[str, Any] = {name: [obj for _, obj in objs] for name, objs in sections.items()}
    fields["hosts"].extend(host for _, host in slot_hosts)
    document = models.Document.model_construct(
        schema_="watchkeeper/v1", defaults=defaults, **fields
    )
    return Validated(
        raw=raw, content_hash=doc_hash, problems=problems, document=document, origins=origins
    )


def _slot_names(name: str, item: Mapping[str, Any]) -> list[str]:
    """The slot hosts a resource that failed shape validation would have made."""
    count = item.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= 10_000:
        return []
    return [slots.slot_name(name, i) for i in range(count)]


def validate_bytes(body: bytes | str, *, cache: ValidationCache | None = None) -> Validated:
    """Parse and validate; an unreadable body raises `DocumentUnreadable`."""
    return validate(parse_json(body), cache=cache)


def _digest(item: Any) -> bytes:
    """BLAKE2 digest of one object's JSON: the cache key and the object's hash.

    Keys are not sorted (sorting triples the cost on large documents): an object whose keys
    were merely reordered counts as changed, which re-validates it and rewrites its row but
    leaves its checks' hashes, and so their schedules, as they were. The digest is kept
    rather than the JSON: orjson's buffers are 4 KiB each, 450 MB for 110,000 objects.
    """
    try:
        return hashlib.blake2b(orjson.dumps(item), digest_size=16).digest()
    except TypeError:  # not JSON (only Python callers can pass such values): never cached
        return b""


_DEFAULTS: TypeAdapter[models.Defaults] = TypeAdapter(models.Defaults)


def _defaults(value: Any, problems: list[Problem]) -> models.Defaults | None:
    """The document-wide settings, when given; their problems go to ``problems``."""
    if value is None or not isinstance(value, dict):
        return None  # absent, or a type error `_check_top_level` reports
    try:
        return _DEFAULTS.validate_python(value)
    except ValidationError as exc:
        problems.extend(_shape_problems(exc, "defaults", None, value))
        return None


def _check_top_level(raw: Mapping[str, Any]) -> Iterator[Problem]:
    schema = raw.get("schema")
    if schema is None:
        yield Problem(pointer="/schema", message=f'required: set "schema": "{models.SCHEMA_ID}"')
    elif schema != models.SCHEMA_ID:
        yield Problem(
            pointer="/schema",
            message=f"unsupported schema {schema!r}; this version reads {models.SCHEMA_ID!r}",
        )
    known = ["schema", "defaults", *models.SECTIONS]
    for key in raw:
        if key not in known:
            yield Problem(pointer=pointer(key), message=_unknown_field(key, known))
    if raw.get("defaults") is not None and not isinstance(raw["defaults"], dict):
        yield Problem(
            pointer="/defaults", message=f"must be an object, not {_json_type(raw['defaults'])}"
        )
    for section in models.SECTIONS:
        value = raw.get(section)
        if section in raw and not isinstance(value, list):
            yield Problem(
                pointer=pointer(section),
                message=f"must be a list of objects, not {_json_type(value)}",
            )


# --- turning pydantic errors into located, readable problems -----------------------------


def _shape_problems(
    exc: ValidationError, section: str, index: int | None, item: Any
) -> Iterator[Problem]:
    seen: set[tuple[str, str]] = set()
    for error in exc.errors(include_url=False):
        loc = error["loc"]
        if loc and loc[-1] == "[key]" and error["type"] != "extra_forbidden":
            loc = loc[:-1]  # the error is about the key itself: point at that entry
        path, parent = _json_path(item, loc)
        where = pointer(section, *path) if index is None else pointer(section, index, *path)
        message = _message(error, path, parent, str(path[-1]) if path else section)
        if (where, message) not in seen:
            seen.add((where, message))
            yield Problem(pointer=where, message=message)


def _json_path(item: Any, loc: Sequence[int | str]) -> tuple[list[str | int], Any]:
    """Map a pydantic location onto the raw JSON, dropping union tags pydantic inserts."""
    path: list[str | int] = []
    node, parent = item, None
    skipped: set[int | str] = set()  # tags already skipped at this node (a field may share one)
    for part in loc:
        if part not in skipped and _is_tag(node, part):
            skipped.add(part)  # a tag pydantic adds for the chosen union member: not in the JSON
        elif _contains(node, part):
            parent, node = node, node[part]
            path.append(part)
            skipped = set()
        elif isinstance(node, dict):
            parent = node
            path.append(part)  # a missing or unknown key: point at where it would be
            node = None
    return path, parent


def _contains(node: Any, part: int | str) -> bool:
    if isinstance(node, dict):
        return part in node
    return isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)


# Members of a plain union, as pydantic names them in a location: str, int, list[str], and
# constrained-str for a str bounded by `MAX_STRING`...
_UNION_MEMBER = re.compile(r"^(?:str|int|float|bool|constrained-str|[a-z][a-z-]*\[.*\])$")


def _is_tag(node: Any, part: int | str) -> bool:
    if isinstance(node, dict):
        if part in (node.get("kind"), node.get("provider")) or part in ("selector", "inline"):
            return True
        return isinstance(part, str) and part not in node and bool(_UNION_MEMBER.match(part))
    if isinstance(node, list):
        return part == "names"
    return isinstance(node, str) and part == "name"


def _message(error: Any, path: list[str | int], parent: Any, holder: str) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        field_name = str(path[-1]) if path else "?"
        return _unknown_field(field_name, _allowed_fields(parent, field_name))
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        expected = [t.strip(" '") for t in str(ctx.get("expected_tags", "")).split(",")]
        tag = ctx.get("tag")
        key = str(ctx.get("discriminator", "kind")).strip("'")
        if kind == "union_tag_not_found":
            kinds = _UNION_KINDS.get(holder, ())
            listed = f" (one of: {', '.join(kinds)})" if kinds else ""
            return f"required field {key!r} is missing{listed}"
        hint = did_you_mean(str(tag), expected)
        return f"unknown {key} {tag!r}{hint}; expected one of: {', '.join(expected)}"
    if kind == "string_pattern_mismatch":
        pattern = ctx.get("pattern")
        if pattern == models.NAME_PATTERN:
            return (
                "not a valid name: start with a letter or digit, then letters, digits, "
                "'.', '_' or '-' (at most 128)"
            )
        if pattern == models.LABEL_KEY_PATTERN:
            return "not a valid label key"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


# Field names of every document model, used to suggest the field a typo meant.
def _model_fields(model: type[BaseModel]) -> tuple[frozenset[str], str | None]:
    names = frozenset(f.alias or n for n, f in model.model_fields.items())
    kind_field = model.model_fields.get("kind") or model.model_fields.get("provider")
    kind = None
    if kind_field is not None and getattr(kind_field.annotation, "__args__", None):
        kind = kind_field.annotation.__args__[0]  # type: ignore[union-attr]
    return names, kind


def _all_models(base: type[BaseModel]) -> Iterable[type[BaseModel]]:
    for sub in base.__subclasses__():
        yield sub
        yield from _all_models(sub)


#: The document's models and every plugin's ``Config`` (a third party's need not be Strict).
_MODEL_FIELDS = [
    _model_fields(m)
    for m in dict.fromkeys(
        [
            *_all_models(models.Strict),
            *plugins.CHECKS.configs(),
            *plugins.ACTIONS.configs(),
            *plugins.CHANNELS.configs(),
            *plugins.PROVIDERS.configs(),
        ]
    )
]

# The kinds of each tagged union, by the field (or section) that holds one.
_UNION_KINDS = {
    "check": plugins.CHECKS.kinds(),
    "action": plugins.ACTIONS.kinds(),
    "notifications": plugins.CHANNELS.kinds(),
    "platforms": plugins.PROVIDERS.kinds(),
}


def _allowed_fields(parent: Any, unknown: str) -> list[str]:
    """Fields of the models that fit the other keys of ``parent`` (a heuristic, for hints)."""
    if not isinstance(parent, dict):
        return []
    others = {k for k in parent if k != unknown}
    kind = parent.get("kind", parent.get("provider"))
    allowed: set[str] = set()
    for names, model_kind in _MODEL_FIELDS:
        if model_kind is not None and isinstance(kind, str) and model_kind != kind:
            continue
        if others.issubset(names | {unknown}):
            allowed |= names
    return sorted(allowed - set(parent))


def _unknown_field(name: str, allowed: Sequence[str]) -> str:
    return f"unknown field {name!r}{did_you_mean(name, allowed)}"


def _json_type(value: Any) -> str:
    return {dict: "an object", str: "a string", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, int | float) else "null"
    )
