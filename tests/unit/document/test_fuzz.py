"""Property-based fuzzing of the validator.

Whatever a source sends, validation never raises (only `parse_json` refuses what is not a
JSON object), every problem carries a JSON pointer into the candidate, and an accepted
document can always be flattened into records.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.fixtures import documents
from watchkeeper import plugins
from watchkeeper.document import models, normalize
from watchkeeper.document.validate import (
    Validated,
    ValidationCache,
    parse_json,
    validate,
    validate_bytes,
)
from watchkeeper.errors import DocumentUnreadable

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- strategies ---------------------------------------------------------------------------

#: Scalars as orjson reads them: 64-bit integers, finite floats, any text.
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=16,
)


def _field_names() -> list[str]:
    names: set[str] = set()
    stack: list[type[models.Strict]] = [models.Strict]
    while stack:
        model = stack.pop()
        stack.extend(model.__subclasses__())
        names |= {f.alias or n for n, f in model.model_fields.items()}
    return sorted(names)


#: Values a document plausibly holds, so fuzzing reaches past the first type error.
domain_atoms = st.sampled_from(
    [
        "core",
        "dmz",
        "web1",
        "db1",
        "gw",
        "basic",
        "ops-mail",
        "lab",
        "restart-nginx",
        "https",
        "bad name!",
        "30s",
        "5m",
        "0s",
        "99999999999w",
        "10:20",
        "@10:20",
        "~:",
        "20:10",
        "env:TOKEN",
        "file:/etc/key",
        "hunter2",
        "https://example.net/x",
        "ops@example.net",
        "CRITICAL",
        "DOWN",
        "reboot",
        "strict",
        "/health",
        "watchkeeper/v1",
        *plugins.CHECKS.kinds(),
        "webhook",
        "email",
        "command",
        "platform",
        0,
        1,
        22,
        70000,
        -1,
        True,
        [],
        {},
    ]
)
field_names = st.sampled_from(_field_names()) | st.text(max_size=6)


def document_like(depth: int = 3) -> st.SearchStrategy[Any]:
    """Objects keyed by real field names, holding plausible values, nested ``depth`` deep."""
    leaf = domain_atoms | json_scalars
    if depth == 0:
        return leaf
    inner = document_like(depth - 1)
    return (
        leaf
        | st.lists(inner | domain_atoms, max_size=3)
        | st.dictionaries(field_names, inner, max_size=6)
    )


candidates = st.fixed_dictionaries(
    {},
    optional={
        "schema": st.just("watchkeeper/v1") | json_scalars,
        **{
            section: st.lists(document_like(), max_size=4) | json_values
            for section in models.SECTIONS
        },
        "extra": json_values,
    },
)


# --- properties ---------------------------------------------------------------------------


def _tokens(pointer: str) -> list[str]:
    assert pointer.startswith("/"), pointer
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/")[1:]]


def resolves(raw: Any, pointer: str) -> bool:
    """The pointer names an existing location, or a missing/unknown key of an existing object."""
    node = raw
    tokens = _tokens(pointer)
    for i, token in enumerate(tokens):
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif (
            isinstance(node, list)
            and token.isascii()
            and token.isdigit()
            and int(token) < len(node)
        ):
            node = node[int(token)]
        else:
            return isinstance(node, dict) and i == len(tokens) - 1
    return True


def assert_well_formed(raw: Any, result: Validated) -> None:
    for problem in result.problems:
        assert problem.message.strip(), problem
        assert resolves(raw, problem.pointer), f"{problem} does not resolve in {raw!r}"
    if result.ok:
        assert not result.errors
        assert result.document is not None
        snapshot = normalize.snapshot(result.document)  # an accepted document always flattens
        assert set(snapshot.objects) == set(models.SECTIONS)
    else:
        assert result.errors, "a rejection without an error"
        assert result.document is None


@FUZZ
@given(json_values)
def test_any_json_either_parses_to_an_object_or_is_unreadable(value: Any) -> None:
    body = orjson.dumps(value)
    if not isinstance(value, dict):
        with pytest.raises(DocumentUnreadable, match="must be a JSON object"):
            validate_bytes(body)
        return
    assert_well_formed(value, validate_bytes(body))


@FUZZ
@given(st.binary(max_size=64))
def test_any_bytes_are_refused_or_validated(body: bytes) -> None:
    try:
        raw = parse_json(body)
    except DocumentUnreadable as exc:
        assert exc.message
        return
    assert_well_formed(raw, validate(raw))


@FUZZ
@given(candidates)
@example({"schema": "watchkeeper/v1", "infrastructure": [{"¹": None}]})  # isdigit, not int
@example({"schema": "watchkeeper/v1", "templates": [{"name": "t", "timeout": "99999999999w"}]})
@example({"schema": "watchkeeper/v1", "platforms": [{"name": "p", "options": {"x": {}}}]})
def test_arbitrary_sections_never_raise_and_every_problem_is_located(raw: dict[str, Any]) -> None:
    assert_well_formed(raw, validate(raw))


@FUZZ
@given(st.sampled_from(sorted(models.SECTIONS)), st.lists(document_like(), min_size=1, max_size=3))
def test_fuzzed_items_in_a_valid_document(section: str, items: list[Any]) -> None:
    raw = documents.full_document()
    raw[section].extend(items)
    assert_well_formed(raw, validate(raw))


# --- mutations of the full document -------------------------------------------------------


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out.extend(_paths(value, (*prefix, key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out.extend(_paths(value, (*prefix, index)))
    return out


FULL_PATHS = _paths(documents.full_document())


def _parent(raw: Any, path: tuple[Any, ...]) -> Any:
    node = raw
    for part in path[:-1]:
        node = node[part]
    return node


@st.composite
def mutations(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    raw = documents.full_document()
    path = draw(st.sampled_from(FULL_PATHS))
    parent, last = _parent(raw, path), path[-1]
    op = draw(st.sampled_from(["drop", "retype", "rename", "replace"]))
    if op == "drop":
        del parent[last]
    elif op == "retype":
        old = parent[last]
        new = draw(json_values.filter(lambda v: type(v) is not type(old)))
        parent[last] = new
    elif op == "replace":
        parent[last] = draw(domain_atoms)
    elif isinstance(parent, dict):
        new_key = draw(
            st.sampled_from([last + "x", last[:-1], last.upper(), "_" + last])
            | st.sampled_from(_field_names())
        )
        value = parent.pop(last)
        parent[new_key] = value
    else:  # rename inside a list: move the element instead
        parent.insert(0, parent.pop(last))
    return raw, f"{op} {path!r}"


@FUZZ
@given(mutations())
def test_mutations_of_the_full_document(mutation: tuple[dict[str, Any], str]) -> None:
    raw, _ = mutation
    result = validate(raw)
    assert_well_formed(raw, result)


@FUZZ
@given(mutations())
def test_cached_validation_equals_uncached(mutation: tuple[dict[str, Any], str]) -> None:
    raw, _ = mutation
    cache = ValidationCache()
    validate(documents.full_document(), cache=cache)  # prime with the original
    cached = validate(raw, cache=cache)
    again = validate(raw, cache=cache)
    plain = validate(raw)
    assert cached.problems == plain.problems == again.problems
    assert cached.document == plain.document == again.document
