"""Validation of shape: every problem located by its JSON pointer, all of them collected."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.fixtures import documents
from tests.fixtures.documents import Invalid
from watchkeeper import plugins
from watchkeeper.document import models
from watchkeeper.document import validate as validate_module
from watchkeeper.document.problems import Severity
from watchkeeper.document.validate import (
    ValidationCache,
    content_hash,
    parse_json,
    validate,
    validate_bytes,
)
from watchkeeper.errors import DocumentUnreadable
from watchkeeper.notify.channels import EmailChannel
from watchkeeper.worker.executors import HttpCheck


def set_at(raw: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """Set (or, with ``...``, delete) the value at a slash-separated path; return ``raw``."""
    *parents, last = [int(p) if p.isdigit() else p for p in path.strip("/").split("/")]
    node: Any = raw
    for part in parents:
        node = node[part]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return raw


def only_error(raw: dict[str, Any]) -> tuple[str, str]:
    """The single error of a candidate, as (pointer, message)."""
    result = validate(raw)
    assert not result.ok
    assert len(result.errors) == 1, [str(p) for p in result.errors]
    return result.errors[0].pointer, result.errors[0].message


# --- parsing ------------------------------------------------------------------------------


def test_parse_json_accepts_bytes_and_str() -> None:
    assert parse_json(b'{"schema": "watchkeeper/v1"}') == {"schema": "watchkeeper/v1"}
    assert parse_json('{"a": [1]}') == {"a": [1]}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"{'schema': 1}", "not valid JSON"),
        (b"[]", "must be a JSON object, not list"),
        (b'"watchkeeper/v1"', "must be a JSON object, not str"),
        (b"3", "must be a JSON object, not int"),
        (b"null", "must be a JSON object, not NoneType"),
    ],
)
def test_parse_json_refuses_what_is_not_an_object(body: bytes, fragment: str) -> None:
    with pytest.raises(DocumentUnreadable, match=fragment):
        parse_json(body)


def test_parse_json_refuses_an_oversized_body(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validate_module, "MAX_DOCUMENT_BYTES", 10)
    with pytest.raises(DocumentUnreadable, match="document is 29 bytes, over 10"):
        parse_json(b'{"schema": "watchkeeper/v1"}\n')


def test_validate_bytes_parses_then_validates() -> None:
    result = validate_bytes(orjson.dumps(documents.full_document()))
    assert result.ok
    with pytest.raises(DocumentUnreadable):
        validate_bytes(b"not json")


def test_content_hash_ignores_key_order_and_whitespace() -> None:
    raw = documents.full_document()
    reordered = dict(reversed(list(raw.items())))
    assert content_hash(raw) == content_hash(reordered)
    assert content_hash(raw) == content_hash(
        parse_json(orjson.dumps(raw, option=orjson.OPT_INDENT_2))
    )
    raw["zones"][0]["description"] = "changed"
    assert content_hash(raw) != content_hash(documents.full_document())
    assert validate(documents.full_document()).content_hash == content_hash(
        documents.full_document()
    )


# --- the corpus ---------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "raw"), documents.valid_documents().items())
def test_valid_documents_are_accepted(name: str, raw: dict[str, Any]) -> None:
    result = validate(raw)
    assert result.ok, [str(p) for p in result.problems]
    assert result.errors == []
    assert result.document is not None
    assert result.document.schema_ == models.SCHEMA_ID


@pytest.mark.parametrize(("name", "case"), documents.invalid_documents().items())
def test_invalid_documents_are_rejected_at_their_pointers(name: str, case: Invalid) -> None:
    result = validate(case.raw)
    assert not result.ok
    assert result.document is None
    assert [p.pointer for p in result.errors] == case.pointers


def test_full_document_has_no_problems_at_all() -> None:
    assert validate(documents.full_document()).problems == []


def test_full_document_uses_every_kind() -> None:
    raw = documents.full_document()
    checks = [s["check"]["kind"] for s in raw["services"]]
    assert sorted(checks) == sorted(plugins.CHECKS.kinds()) == sorted(documents.CHECK_KINDS)
    assert sorted(c["kind"] for c in raw["notifications"]) == sorted(documents.CHANNEL_KINDS)
    assert sorted(a["action"]["kind"] for a in raw["actions"]) == sorted(documents.ACTION_KINDS)
    assert all(raw[section] for section in models.SECTIONS)


def test_factories_return_fresh_copies() -> None:
    first = documents.full_document()
    first["hosts"][0]["labels"]["mutated"] = "yes"
    assert "mutated" not in documents.full_document()["hosts"][0]["labels"]
    assert documents.minimal_document() is not documents.minimal_document()


def test_accepted_document_keeps_the_parsed_objects() -> None:
    result = validate(documents.full_document())
    assert result.document is not None
    assert [z.name for z in result.document.zones] == ["core", "dmz"]
    assert isinstance(result.document.services[2].hosts, models.LabelSelector)
    assert isinstance(result.document.notifications[1], EmailChannel)
    assert result.document.notifications[1].sender == "watchkeeper@example.net"


# --- top level ----------------------------------------------------------------------------


def test_missing_schema_is_reported_with_everything_else() -> None:
    raw = documents.small_document()
    del raw["schema"]
    raw["hosts"][0]["zone"] = "nowhere"
    problems = [(p.pointer, p.message) for p in validate(raw).problems]
    assert problems == [
        ("/hosts/0/zone", "unknown zone 'nowhere'"),
        ("/schema", 'required: set "schema": "watchkeeper/v1"'),
    ]


def test_an_unsupported_schema_stops_validation() -> None:
    raw = documents.small_document()
    raw["schema"] = "watchkeeper/v2"
    raw["hosts"][0]["zone"] = "nowhere"
    assert only_error(raw) == (
        "/schema",
        "unsupported schema 'watchkeeper/v2'; this version reads 'watchkeeper/v1'",
    )


def test_unknown_top_level_key_with_hint() -> None:
    raw = documents.small_document()
    raw["service"] = raw.pop("services")
    assert only_error(raw) == ("/service", "unknown field 'service' (did you mean 'services'?)")


def test_unknown_top_level_key_without_a_near_miss() -> None:
    raw = documents.minimal_document()
    raw["zzz"] = 1
    assert only_error(raw) == ("/zzz", "unknown field 'zzz'")


@pytest.mark.parametrize(
    ("value", "kind"),
    [("web1", "a string"), ({}, "an object"), (3, "a number"), (True, "a boolean"), (None, "null")],
)
def test_a_section_must_be_a_list(value: Any, kind: str) -> None:
    raw = documents.minimal_document()
    raw["hosts"] = value
    assert only_error(raw) == ("/hosts", f"must be a list of objects, not {kind}")


@pytest.mark.parametrize("item", [None, "web1", 3, ["web1"]])
def test_an_item_must_be_an_object(item: Any) -> None:
    raw = documents.small_document()
    raw["zones"].append(item)
    pointer, message = only_error(raw)
    assert pointer == "/zones/1"
    assert "valid dictionary" in message


# --- shape problems, located --------------------------------------------------------------

SHAPE_CASES = [
    # (path in the full document, new value or ... to delete, pointer, message fragment)
    (
        "/infrastructure/0/name",
        "-w",
        "/infrastructure/0/name",
        "not a valid name: start with a letter or digit",
    ),
    ("/infrastructure/0/name", "x" * 129, "/infrastructure/0/name", "(at most 128)"),
    ("/hosts/2/address", ..., "/hosts/2/address", "required field is missing"),
    ("/hosts/2/address", "web 2", "/hosts/2/address", "should match pattern"),
    ("/hosts/2/zone", ..., "/hosts/2/zone", "required field is missing"),
    ("/hosts/2/labels", {"bad key": "x"}, "/hosts/2/labels/bad key", "not a valid label key"),
    ("/hosts/2/labels", {"ok": "x" * 257}, "/hosts/2/labels/ok", "at most 256 characters"),
    ("/hosts/2/labels", {"ok": 1}, "/hosts/2/labels/ok", "valid string"),
    ("/hosts/2/parents", "gw", "/hosts/2/parents", "valid list"),
    ("/hosts/2/parents/0", "g w", "/hosts/2/parents/0", "not a valid name"),
    ("/hosts/0/check/check/count", 0, "/hosts/0/check/check/count", "greater than or equal to 1"),
    ("/services/0/hosts", 5, "/services/0/hosts", "valid dictionary"),
    ("/services/0/hosts/1", "g w", "/services/0/hosts/1", "not a valid name"),
    ("/services/2/hosts/zone", "d m z", "/services/2/hosts/zone", "not a valid name"),
    ("/services/2/hosts/labels", {"role": 1}, "/services/2/hosts/labels/role", "valid string"),
    ("/services/0/interval", "5 minutes", "/services/0/interval", "'5 minutes' is not a duration"),
    ("/services/0/interval", 300, "/services/0/interval", "300 is not a duration"),
    ("/services/0/timeout", "99999999999d", "/services/0/timeout", "too long a duration"),
    ("/services/0/max_attempts", 0, "/services/0/max_attempts", "greater than or equal to 1"),
    ("/services/0/max_attempts", 101, "/services/0/max_attempts", "less than or equal to 100"),
    ("/services/2/notifications/0", "a b", "/services/2/notifications/0", "not a valid name"),
    ("/services/0/check/command", [], "/services/0/check/command", "at least 1 item"),
    ("/services/0/check/command", [""], "/services/0/check/command/0", "at least 1 character"),
    ("/services/0/check/timeout_state", "ok", "/services/0/check/timeout_state", "'UNKNOWN'"),
    ("/services/1/check/port", 0, "/services/1/check/port", "greater than or equal to 1"),
    ("/services/1/check/port", 65536, "/services/1/check/port", "less than or equal to 65535"),
    ("/services/1/check/port", ..., "/services/1/check/port", "required field is missing"),
    ("/services/2/check/path", "health", "/services/2/check/path", "match pattern '^/'"),
    ("/services/2/check/method", "PUT", "/services/2/check/method", "'GET', 'HEAD' or 'POST'"),
    ("/services/2/check/expect_status/1", 700, "/services/2/check/expect_status/1", "599"),
    (
        "/services/2/check/certificate_days",
        -1,
        "/services/2/check/certificate_days",
        "or equal to 0",
    ),
    ("/services/3/check/count", 101, "/services/3/check/count", "less than or equal to 100"),
    ("/services/4/check/key", ..., "/services/4/check/key", "required field is missing"),
    ("/services/4/check/known_hosts", "yes", "/services/4/check/known_hosts", "'accept-new'"),
    ("/services/5/check/command", "check_mem", "/services/5/check/command", "valid list"),
    (
        "/services/0/thresholds/time/critical",
        "10:5",
        "/services/0/thresholds/time/critical",
        "start 10 is above end 5",
    ),
    (
        "/services/0/thresholds/time/warning",
        True,
        "/services/0/thresholds/time/warning",
        "a threshold range is a string",
    ),
    (
        "/services/0/thresholds",
        {"": {"warning": "1"}},
        "/services/0/thresholds/",
        "at least 1 character",
    ),
    ("/services/0/thresholds/time", "10", "/services/0/thresholds/time", "valid dictionary"),
    ("/notifications/0/url", "ftp://x", "/notifications/0/url", "match pattern"),
    ("/notifications/0/headers", {"X": 1}, "/notifications/0/headers/X", "valid string"),
    ("/notifications/1/to", [], "/notifications/1/to", "at least 1 item"),
    ("/notifications/1/to/0", "nobody", "/notifications/1/to/0", "match pattern"),
    ("/notifications/1/smtp_port", 0, "/notifications/1/smtp_port", "greater than or equal to 1"),
    ("/notifications/2/command", ..., "/notifications/2/command", "required field is missing"),
    ("/actions/0/action/command", ..., "/actions/0/action/command", "required field is missing"),
    ("/actions/1/action/command", ..., "/actions/1/action/command", "required field is missing"),
    ("/actions/2/action/url", "deploy", "/actions/2/action/url", "match pattern"),
    ("/actions/2/action/method", "PATCH", "/actions/2/action/method", "'DELETE'"),
    ("/actions/3/action/operation", "explode", "/actions/3/action/operation", "'reboot', 'start'"),
    ("/actions/3/action/platform", ..., "/actions/3/action/platform", "required field is missing"),
    ("/remediations/0/when/state", "BROKEN", "/remediations/0/when/state", "'WARNING', 'CRITICAL'"),
    ("/remediations/0/when/hard", "maybe", "/remediations/0/when/hard", "valid boolean"),
    ("/remediations/0/when", ..., "/remediations/0/when", "required field is missing"),
    ("/remediations/0/action", 5, "/remediations/0/action", "valid dictionary"),
    ("/remediations/0/action", "a b", "/remediations/0/action", "not a valid name"),
    (
        "/remediations/2/action/command",
        ...,
        "/remediations/2/action/command",
        "required field is missing",
    ),
    ("/remediations/0/window", "forever", "/remediations/0/window", "'forever' is not a duration"),
    (
        "/remediations/0/max_attempts",
        0,
        "/remediations/0/max_attempts",
        "greater than or equal to 1",
    ),
    ("/platforms/0/provider", "EC2", "/platforms/0", "unknown provider 'EC2'"),
    ("/platforms/0/options/x", {"y": 1}, "/platforms/0/options/x", "unknown field 'x'"),
    ("/infrastructure/0/options/x", {"y": 1}, "/infrastructure/0/options/x", "valid string"),
    ("/infrastructure/0/count", -1, "/infrastructure/0/count", "greater than or equal to 0"),
    ("/infrastructure/0/count", 10001, "/infrastructure/0/count", "less than or equal to 10000"),
    ("/infrastructure/0/labels", {"a": 1}, "/infrastructure/0/labels/a", "valid string"),
]


@pytest.mark.parametrize(("path", "value", "pointer", "fragment"), SHAPE_CASES)
def test_shape_problem_is_located(path: str, value: Any, pointer: str, fragment: str) -> None:
    result = validate(set_at(documents.full_document(), path, value))
    assert not result.ok
    assert {p.pointer for p in result.errors} == {pointer}, [str(p) for p in result.errors]
    assert any(fragment in p.message for p in result.errors), [str(p) for p in result.errors]


def test_a_union_of_scalars_reports_one_pointer_for_all_members() -> None:
    raw = set_at(documents.full_document(), "/infrastructure/0/options/x", {"y": 1})
    problems = validate(raw).errors
    assert {p.pointer for p in problems} == {"/infrastructure/0/options/x"}
    assert sorted(p.message for p in problems) == [
        "Input should be a valid boolean",
        "Input should be a valid integer",
        "Input should be a valid list",
        "Input should be a valid number",
        "Input should be a valid string",
    ]


# --- kinds --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "kind", "pointer", "message"),
    [
        (
            "/services/1/check/kind",
            "tpc",
            "/services/1/check",
            "unknown kind 'tpc' (did you mean 'tcp'?); expected one of: "
            "plugin, tcp, http, ping, ssh, agent, platform",
        ),
        (
            "/notifications/0/kind",
            "sms",
            "/notifications/0",
            "unknown kind 'sms'; expected one of: webhook, email, command",
        ),
        (
            "/actions/0/action/kind",
            "shh",
            "/actions/0/action",
            "unknown kind 'shh' (did you mean 'ssh'?); expected one of: "
            "ssh, command, http, platform",
        ),
        (
            "/remediations/2/action/kind",
            "comand",
            "/remediations/2/action",
            "unknown kind 'comand' (did you mean 'command'?); expected one of: "
            "ssh, command, http, platform",
        ),
        (
            "/services/1/check/kind",
            ...,
            "/services/1/check",
            "required field 'kind' is missing (one of: plugin, tcp, http, ping, ssh, agent, "
            "platform)",
        ),
        (
            "/notifications/0/kind",
            ...,
            "/notifications/0",
            "required field 'kind' is missing (one of: webhook, email, command)",
        ),
        (
            "/actions/0/action/kind",
            ...,
            "/actions/0/action",
            "required field 'kind' is missing (one of: ssh, command, http, platform)",
        ),
        (
            "/remediations/2/action/kind",
            ...,
            "/remediations/2/action",
            "required field 'kind' is missing (one of: ssh, command, http, platform)",
        ),
    ],
)
def test_kind_problems(path: str, kind: Any, pointer: str, message: str) -> None:
    assert only_error(set_at(documents.full_document(), path, kind)) == (pointer, message)


@pytest.mark.parametrize(
    ("service", "check"),
    [
        ("plugin", {"kind": "plugin", "command": ["/bin/true"]}),
        ("tcp", {"kind": "tcp", "port": 22}),
        ("http", {"kind": "http"}),
        ("ping", {"kind": "ping"}),
        ("ssh", {"kind": "ssh", "command": ["uptime"], "key": "env:KEY"}),
        ("agent", {"kind": "agent", "command": ["check_load"]}),
    ],
)
def test_every_check_kind_with_only_its_required_fields(
    service: str, check: dict[str, Any]
) -> None:
    raw = documents.small_document()
    raw["services"][0]["check"] = check
    result = validate(raw)
    assert result.ok, [str(p) for p in result.problems]
    assert result.document is not None
    assert result.document.services[0].check is not None
    assert result.document.services[0].check.kind == service


def test_check_defaults() -> None:
    raw = documents.small_document()
    raw["services"][0]["check"] = {"kind": "http"}
    result = validate(raw)
    assert result.document is not None
    check = result.document.services[0].check
    assert isinstance(check, HttpCheck)
    assert (check.port, check.path, check.method, check.expect_status) == (None, "/", "GET", [200])


# --- unknown fields and did-you-mean ------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "typo", "pointer", "hint"),
    [
        ("/zones/0/description", "descripton", "/zones/0/descripton", "description"),
        ("/hosts/0/address", "adress", "/hosts/0/adress", "address"),
        ("/hosts/1/parents", "parent", "/hosts/1/parent", "parents"),
        ("/hosts/0/check/interval", "intervall", "/hosts/0/check/intervall", "interval"),
        ("/templates/0/retry_interval", "retry", "/templates/0/retry", "renotify"),
        ("/services/1/interval", "intervall", "/services/1/intervall", "interval"),
        ("/services/1/check/port", "prot", "/services/1/check/prot", "port"),
        ("/services/2/check/method", "methd", "/services/2/check/methd", "method"),
        ("/services/2/hosts/labels", "label", "/services/2/hosts/label", "labels"),
        (
            "/services/0/thresholds/time/warning",
            "warn",
            "/services/0/thresholds/time/warn",
            "warning",
        ),
        ("/notifications/1/smtp_host", "smtp_hots", "/notifications/1/smtp_hots", "smtp_host"),
        ("/notifications/1/from", "form", "/notifications/1/form", "from"),
        ("/actions/2/action/bearer_token", "bearer", "/actions/2/action/bearer", "bearer_token"),
        ("/remediations/0/when/service", "sevice", "/remediations/0/when/sevice", "service"),
        ("/remediations/0/cooldown", "cooldwn", "/remediations/0/cooldwn", "cooldown"),
        ("/platforms/0/credentials", "credential", "/platforms/0/credential", "credentials"),
        ("/infrastructure/0/image", "imag", "/infrastructure/0/imag", "image"),
    ],
)
def test_renamed_field_is_unknown_with_a_hint(
    path: str, typo: str, pointer: str, hint: str | None
) -> None:
    raw = documents.full_document()
    *parent_path, key = path.strip("/").split("/")
    parent: Any = raw
    for part in parent_path:
        parent = parent[int(part) if part.isdigit() else part]
    parent[typo] = parent.pop(key)
    errors = [(p.pointer, p.message) for p in validate(raw).errors]
    expected = f"unknown field {typo!r}" + (f" (did you mean {hint!r}?)" if hint else "")
    assert (pointer, expected) in errors, errors


def test_hint_is_specific_to_the_check_kind() -> None:
    raw = documents.small_document()
    raw["services"][0]["check"] = {"kind": "ping", "cuont": 3}
    assert only_error(raw) == (
        "/services/0/check/cuont",
        "unknown field 'cuont' (did you mean 'count'?)",
    )
    raw["services"][0]["check"] = {"kind": "ping", "prot": 3}  # port exists, but not on ping
    assert only_error(raw) == ("/services/0/check/prot", "unknown field 'prot'")


def _model_objects(node: Any, path: str = "") -> list[str]:
    """Pointers of every object in the full document that is a model (not a free-form map)."""
    free_form = {"labels", "thresholds", "options", "headers", "body"}
    out: list[str] = []
    if isinstance(node, dict):
        out.append(path)
        for key, value in node.items():
            child = f"{path}/{key}"
            if key in free_form and isinstance(value, dict):
                if key == "thresholds":
                    out.extend(f"{child}/{metric}" for metric in value)
                continue
            out.extend(_model_objects(value, child))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out.extend(_model_objects(value, f"{path}/{index}"))
    return out


@pytest.mark.parametrize("where", [p for p in _model_objects(documents.full_document()) if p])
def test_unknown_fields_are_errors_in_every_object(where: str) -> None:
    raw = documents.full_document()
    node: Any = raw
    for part in where.strip("/").split("/"):
        node = node[int(part) if part.isdigit() else part]
    node["zzz_unknown"] = 1
    assert only_error(raw) == (f"{where}/zzz_unknown", "unknown field 'zzz_unknown'")


# --- secrets ------------------------------------------------------------------------------

SECRET_FIELDS = [
    "/services/2/check/bearer_token",
    "/services/4/check/key",
    "/notifications/0/secret",
    "/notifications/1/password",
    "/actions/0/action/key",
    "/actions/2/action/bearer_token",
    "/platforms/0/credentials",
]


@pytest.mark.parametrize("path", SECRET_FIELDS)
@pytest.mark.parametrize(
    "literal", ["hunter2", "-----BEGIN OPENSSH PRIVATE KEY-----", "env:", "file:relative", "env:1X"]
)
def test_secret_fields_refuse_literals(path: str, literal: str) -> None:
    pointer, message = only_error(set_at(documents.full_document(), path, literal))
    assert pointer == path
    assert message == (
        "secret fields take a reference, never a literal value: "
        "use env:NAME (an environment variable) or file:/path (a file on the worker)"
    )
    assert "hunter2" not in message  # the literal is never echoed back


@pytest.mark.parametrize("path", SECRET_FIELDS)
@pytest.mark.parametrize("value", [42, ["env:A"], {"env": "A"}])
def test_secret_fields_refuse_non_strings(path: str, value: Any) -> None:
    pointer, message = only_error(set_at(documents.full_document(), path, value))
    assert (pointer, message) == (
        path,
        "a secret field takes a reference string: env:NAME or file:/path",
    )


@pytest.mark.parametrize("path", SECRET_FIELDS)
@pytest.mark.parametrize("ref", ["env:TOKEN", "env:_x1", "file:/etc/watchkeeper/secret"])
def test_secret_fields_accept_references(path: str, ref: str) -> None:
    assert validate(set_at(documents.full_document(), path, ref)).ok


def test_an_inline_remediation_action_is_checked_for_secrets() -> None:
    raw = documents.full_document()
    raw["remediations"][2]["action"] = {"kind": "ssh", "command": ["x"], "key": "literal"}
    pointer, message = only_error(raw)
    assert pointer == "/remediations/2/action/key"
    assert message.startswith("secret fields take a reference")


# --- collecting every problem -------------------------------------------------------------


def test_all_problems_are_collected_in_document_order() -> None:
    raw = documents.full_document()
    raw["zones"][1]["colour"] = "red"
    raw["hosts"][3]["address"] = ""
    raw["services"][1]["check"]["port"] = 0
    raw["services"][4]["check"]["key"] = "secret"
    raw["services"][5]["interval"] = "often"
    raw["notifications"][1]["to"] = []
    raw["infrastructure"][0]["platform"] = "nowhere"
    raw["services"].extend([{"name": f"broken-{i}", "hosts": 1} for i in range(11)])
    result = validate(raw)
    assert [p.pointer for p in result.errors] == [
        "/hosts/3/address",
        "/infrastructure/0/platform",
        "/notifications/1/to",
        "/services/1/check/port",
        "/services/4/check/key",
        "/services/5/interval",
        *[f"/services/{i}/hosts" for i in range(7, 18)],
        "/zones/1/colour",
    ]


def test_one_broken_object_does_not_hide_the_others() -> None:
    raw = documents.full_document()
    raw["services"][0]["check"]["command"] = []
    raw["services"][0]["hosts"] = ["nowhere"]  # not reported: the service itself failed shape
    raw["services"][5]["hosts"] = ["nowhere"]
    errors = [(p.pointer, p.message) for p in validate(raw).errors]
    assert errors == [
        ("/services/0/check/command", "List should have at least 1 item after validation, not 0"),
        ("/services/5/hosts/0", "unknown host 'nowhere'"),
    ]


def test_several_problems_in_one_object() -> None:
    raw = documents.small_document()
    raw["hosts"][0] = {"name": "web1", "adress": "x", "zone": 5}
    errors = [(p.pointer, p.message) for p in validate(raw).errors]
    assert errors == [
        ("/hosts/0/address", "required field is missing"),
        ("/hosts/0/adress", "unknown field 'adress' (did you mean 'address'?)"),
        ("/hosts/0/zone", "Input should be a valid string"),
    ]


def test_warnings_alone_do_not_reject() -> None:
    result = validate(documents.valid_documents()["selector-matches-nothing"])
    assert result.ok
    assert result.errors == []
    assert [(p.pointer, p.severity) for p in result.warnings] == [
        ("/services/1/hosts", Severity.WARNING)
    ]


def test_a_warning_is_still_reported_when_the_document_is_rejected() -> None:
    raw = documents.valid_documents()["selector-matches-nothing"]
    raw["hosts"][0]["zone"] = "nowhere"
    result = validate(raw)
    assert not result.ok
    assert [p.pointer for p in result.errors] == ["/hosts/0/zone"]
    assert [p.pointer for p in result.warnings] == ["/services/1/hosts"]


# --- the validation cache -----------------------------------------------------------------


class CountingAdapter:
    """Wraps a pydantic TypeAdapter and records the items it validates."""

    def __init__(self, adapter: Any) -> None:
        self.adapter = adapter
        self.seen: list[Any] = []

    def validate_python(self, item: Any) -> Any:
        self.seen.append(item.get("name") if isinstance(item, dict) else item)
        return self.adapter.validate_python(item)


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch) -> dict[str, CountingAdapter]:
    adapters = {name: CountingAdapter(a) for name, a in validate_module._ADAPTERS.items()}
    for name, adapter in adapters.items():
        monkeypatch.setitem(validate_module._ADAPTERS, name, adapter)
    return adapters


def _validated_names(adapters: dict[str, CountingAdapter]) -> dict[str, list[Any]]:
    return {name: a.seen for name, a in adapters.items() if a.seen}


def test_cache_revalidates_only_the_changed_service(counting: dict[str, CountingAdapter]) -> None:
    cache = ValidationCache()
    raw = documents.full_document()
    total = sum(len(raw[s]) for s in models.SECTIONS)
    first = validate(raw, cache=cache)
    assert first.ok
    assert (cache.hits, cache.misses, len(cache.entries)) == (0, total, total)
    for adapter in counting.values():
        adapter.seen.clear()

    raw = documents.full_document()
    raw["services"][3]["interval"] = "5m"
    second = validate(raw, cache=cache)
    assert _validated_names(counting) == {"services": ["ping"]}
    assert (cache.hits, cache.misses, len(cache.entries)) == (total - 1, total + 1, total)
    assert second.document is not None and first.document is not None
    assert second.document.services[3].interval != first.document.services[3].interval
    # unchanged objects are the very same instances
    assert second.document.services[0] is first.document.services[0]
    assert second.document.hosts[1] is first.document.hosts[1]


def test_cache_result_equals_uncached(counting: dict[str, CountingAdapter]) -> None:
    cache = ValidationCache()
    validate(documents.full_document(), cache=cache)
    raw = documents.full_document()
    raw["services"][3]["interval"] = "5m"
    raw["hosts"][0]["zone"] = "nowhere"
    cached, uncached = validate(raw, cache=cache), validate(raw)
    assert cached.problems == uncached.problems
    assert [p.pointer for p in cached.errors] == ["/hosts/0/zone"]

    raw = documents.full_document()
    cached, uncached = validate(raw, cache=cache), validate(raw)
    assert cached.ok and uncached.ok
    assert cached.document == uncached.document
    assert cached.content_hash == uncached.content_hash


def test_cache_does_not_reuse_an_object_whose_content_changed_under_the_same_name() -> None:
    cache = ValidationCache()
    validate(documents.full_document(), cache=cache)
    raw = documents.full_document()
    raw["services"][1]["check"]["port"] = 0
    result = validate(raw, cache=cache)
    assert [p.pointer for p in result.errors] == ["/services/1/check/port"]
    assert ("services", "postgres") not in cache.entries


def test_cache_is_not_poisoned_by_mutating_the_input() -> None:
    cache = ValidationCache()
    raw = documents.full_document()
    validate(raw, cache=cache)
    raw["services"][1]["check"]["port"] = 0  # the caller mutates its dict afterwards
    assert [p.pointer for p in validate(raw, cache=cache).errors] == ["/services/1/check/port"]


def test_cache_only_keeps_what_the_latest_candidate_used() -> None:
    cache = ValidationCache()
    validate(documents.full_document(), cache=cache)
    validate(documents.small_document(), cache=cache)
    assert set(cache.entries) == {("zones", "core"), ("hosts", "web1"), ("services", "ping")}


def test_document_wide_defaults_are_validated_where_they_are() -> None:
    raw = documents.small_document()
    raw["defaults"] = {"timeout_state": "ok", "out_of_bound_state": "CRITICAL"}
    found = {p.pointer: p.message for p in validate(raw).errors}
    assert "'UNKNOWN'" in found["/defaults/timeout_state"]
    assert "did you mean 'out_of_bounds_state'" in found["/defaults/out_of_bound_state"]
    raw["defaults"] = ["CRITICAL"]
    assert [p.pointer for p in validate(raw).errors] == ["/defaults"]
    raw["defaults"] = {"timeout_state": "UNKNOWN"}
    result = validate(raw)
    assert result.document is not None and result.document.defaults is not None
    assert result.document.defaults.timeout_state == "UNKNOWN"


def test_no_string_field_is_unbounded_and_each_says_where_it_is_too_long() -> None:
    """A 50 MB description was accepted and kept in every version; the document's own cap
    (256 MB) bounds only the whole."""
    raw = {
        "schema": "watchkeeper/v1",
        "zones": [{"name": "z", "description": "d" * 50_000_000}],
        "hosts": [{"name": "h", "address": "10.0.0.1", "zone": "z", "display_name": "n" * 5000}],
        "services": [
            {"name": "s", "hosts": ["h"],
             "check": {"kind": "plugin", "command": ["/bin/true", "a" * 70_000]}},
        ],
    }  # fmt: skip
    found = {p.pointer: p.message for p in validate_bytes(orjson.dumps(raw)).errors}
    assert found == {
        "/zones/0/description": "String should have at most 4096 characters",
        "/hosts/0/display_name": "String should have at most 4096 characters",
        "/services/0/check/command/1": "String should have at most 65536 characters",
    }
    raw["zones"][0]["description"] = "d" * 4096
    raw["hosts"][0]["display_name"] = "web server"
    raw["services"][0]["check"]["command"][1] = "a" * 65_536
    assert validate_bytes(orjson.dumps(raw)).ok


def test_every_built_in_plugin_model_inherits_the_string_bound() -> None:
    for registry in (plugins.CHECKS, plugins.CHANNELS, plugins.ACTIONS):
        for config in registry.configs():
            if config.__module__.startswith("watchkeeper."):  # tests register their own
                assert config.model_config.get("str_max_length") == 65_536, config.__name__
