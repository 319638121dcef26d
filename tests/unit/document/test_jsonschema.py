"""The published JSON Schema and reference: committed copies, and agreement with the validator."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from tests.fixtures import documents
from tests.fixtures.documents import Invalid
from watchkeeper.document.jsonschema import DIALECT, json_schema, json_schema_text
from watchkeeper.document.reference import reference_markdown
from watchkeeper.document.validate import validate

ROOT = Path(__file__).resolve().parents[3]
SCHEMA_FILE = ROOT / "docs" / "schema" / "watchkeeper-v1.json"
REFERENCE_FILE = ROOT / "docs" / "reference" / "document.md"


@pytest.fixture(scope="module")
def schema_validator() -> Draft202012Validator:
    return Draft202012Validator(json_schema())


# --- committed copies ---------------------------------------------------------------------


def test_committed_schema_matches_the_models() -> None:
    committed = SCHEMA_FILE.read_text(encoding="utf-8") if SCHEMA_FILE.exists() else None
    assert committed == json_schema_text(), (
        f"{SCHEMA_FILE.relative_to(ROOT)} is out of date with the models; regenerate it with "
        "`watchkeeper schema > docs/schema/watchkeeper-v1.json`"
    )


def test_committed_reference_matches_the_models() -> None:
    committed = REFERENCE_FILE.read_text(encoding="utf-8") if REFERENCE_FILE.exists() else None
    assert committed == reference_markdown(), (
        f"{REFERENCE_FILE.relative_to(ROOT)} is out of date with the models; regenerate it with "
        "`watchkeeper schema --format markdown > docs/reference/document.md`"
    )


# --- the schema itself --------------------------------------------------------------------


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    schema = json_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == DIALECT
    assert schema["$id"] == "https://watchkeeper.dev/schema/watchkeeper-v1.json"
    assert schema["title"] == "Watchkeeper desired-state document"
    assert schema["required"] == ["schema"]
    assert schema["additionalProperties"] is False


def test_schema_text_is_stable() -> None:
    text = json_schema_text()
    assert text == json_schema_text()
    assert text.endswith("}\n")
    assert orjson.loads(text) == json_schema()
    assert text.startswith('{\n  "$defs": {\n    "Action": {\n      "additionalProperties"')
    assert list(orjson.loads(text)) == sorted(json_schema())  # sorted keys


def test_every_object_in_the_schema_forbids_unknown_fields() -> None:
    for name, spec in json_schema()["$defs"].items():
        if spec.get("type") == "object":
            assert spec.get("additionalProperties") is False, name


def test_reference_covers_every_definition() -> None:
    text = reference_markdown()
    assert text.startswith("# Document reference: `watchkeeper/v1`")
    for name in json_schema()["$defs"]:
        assert f"\n## {name}\n" in text, name
    assert "*secret*" in text
    assert "| `interval` | duration |" in text


# --- the schema agrees with the validator on shape ----------------------------------------


@pytest.mark.parametrize(("name", "raw"), documents.valid_documents().items())
def test_valid_documents_satisfy_the_schema(
    schema_validator: Draft202012Validator, name: str, raw: dict[str, Any]
) -> None:
    errors = [e.message for e in schema_validator.iter_errors(raw)]
    assert errors == []


@pytest.mark.parametrize(("name", "case"), documents.invalid_documents().items())
def test_shape_faults_fail_the_schema_too(
    schema_validator: Draft202012Validator, name: str, case: Invalid
) -> None:
    assert schema_validator.is_valid(case.raw) is not case.shape


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("/services/1/check/kind", "smtp"),
        ("/services/2/check/bearer_token", "hunter2"),
        ("/notifications/1/to", []),
        ("/remediations/0/when/state", "BROKEN"),
        ("/remediations/0/action", 5),
        ("/services/0/hosts", "db1"),
        ("/hosts/0/name", "gw!"),
        ("/hosts/0/labels", {"role": 5}),
        ("/platforms/0/options", {"x": [1]}),
        ("/infrastructure/0/count", 10001),
    ],
)
def test_more_shape_faults_fail_both(
    schema_validator: Draft202012Validator, path: str, value: Any
) -> None:
    raw = set_at(documents.full_document(), path, value)
    assert not validate(raw).ok
    assert not schema_validator.is_valid(raw)


def test_a_bad_label_key_fails_both(schema_validator: Draft202012Validator) -> None:
    raw = set_at(documents.full_document(), "/hosts/0/labels", {"bad key": "x"})
    assert not validate(raw).ok
    assert not schema_validator.is_valid(raw)


def set_at(raw: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    *parents, last = [int(p) if p.isdigit() else p for p in path.strip("/").split("/")]
    node: Any = raw
    for part in parents:
        node = node[part]
    node[last] = value
    return raw


def _rename(raw: dict[str, Any], path: str, new: str) -> dict[str, Any]:
    *parents, last = [int(p) if p.isdigit() else p for p in path.strip("/").split("/")]
    node: Any = raw
    for part in parents:
        node = node[part]
    node[new] = node.pop(last)
    return raw


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(
            set_at(documents.full_document(), "/services/1/check/port", "5432"), id="port-as-string"
        ),
        pytest.param(
            set_at(documents.full_document(), "/services/1/check/tls", 1), id="bool-as-number"
        ),
        pytest.param(
            set_at(documents.full_document(), "/services/4/max_attempts", True), id="int-as-bool"
        ),
        pytest.param(
            set_at(documents.full_document(), "/services/0/thresholds/time/warning", 5),
            id="range-as-number",
        ),
        pytest.param(
            set_at(documents.full_document(), "/services/1/interval", " 30s"),
            id="duration-with-space",
        ),
        pytest.param(
            _rename(documents.full_document(), "/notifications/1/from", "sender"),
            id="field-name-instead-of-alias",
        ),
    ],
)
def test_the_validator_and_the_schema_agree_on_coercions(
    schema_validator: Draft202012Validator, raw: dict[str, Any]
) -> None:
    """No lax coercion: what the published schema refuses, the validator refuses too."""
    assert validate(raw).ok == schema_validator.is_valid(raw)


# Structural mutations (drop a key, rename a key) never split the two apart.
_FULL = documents.full_document()


def _keyed_paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            out.append((*prefix, key))
            out.extend(_keyed_paths(value, (*prefix, key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out.extend(_keyed_paths(value, (*prefix, index)))
    return out


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(_keyed_paths(_FULL)),
    st.sampled_from(["drop", "rename"]),
    st.sampled_from(["x", "name", "kind", "labels", "check", "hosts", "from", "zone"]),
)
def test_structural_mutations_keep_schema_and_validator_in_step(
    schema_validator: Draft202012Validator, path: tuple[Any, ...], op: str, new_key: str
) -> None:
    raw = copy.deepcopy(_FULL)
    node: Any = raw
    for part in path[:-1]:
        node = node[part]
    value = node.pop(path[-1])
    if op == "rename" and new_key not in node:
        node[new_key] = value
    if validate(raw).ok:
        assert schema_validator.is_valid(raw), [
            e.message for e in schema_validator.iter_errors(raw)
        ]
