"""The pydantic models themselves: defaults, aliases, immutability, serialisation."""

from __future__ import annotations

import re
import typing
from datetime import timedelta
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from tests.fixtures import documents
from watchkeeper import plugins
from watchkeeper.document import models
from watchkeeper.document.jsonschema import json_schema
from watchkeeper.notify.channels import EmailChannel
from watchkeeper.secrets import SECRET_REF_PATTERN
from watchkeeper.worker.actions import WorkerCommandAction
from watchkeeper.worker.executors import SshCheck


def all_models() -> list[type[BaseModel]]:
    out: list[type[BaseModel]] = []
    stack: list[type[BaseModel]] = [models.Strict]
    while stack:
        model = stack.pop()
        out.append(model)
        stack.extend(model.__subclasses__())
    return out


def test_the_whole_document_model_accepts_the_full_document() -> None:
    doc = models.Document.model_validate(documents.full_document())
    assert doc.schema_ == "watchkeeper/v1"
    assert [s.name for s in doc.services] == [
        s["name"] for s in documents.full_document()["services"]
    ]


def test_sections_match_the_document_fields_in_order() -> None:
    fields = [n for n in models.Document.model_fields if n not in ("schema_", "defaults")]
    assert list(models.SECTIONS) == fields


def test_check_kinds_match_the_check_union() -> None:
    union = typing.get_args(typing.get_args(models.Check)[0])
    kinds = tuple(typing.get_args(m.model_fields["kind"].annotation)[0] for m in union)
    assert kinds == plugins.CHECKS.kinds()


@pytest.mark.parametrize("model", all_models(), ids=lambda m: m.__name__)
def test_every_model_forbids_unknown_fields_and_is_frozen(model: type[BaseModel]) -> None:
    assert model.model_config.get("extra") == "forbid"
    assert model.model_config.get("frozen") is True


def test_models_are_immutable() -> None:
    zone = models.Zone(name="core")
    with pytest.raises(ValidationError, match="frozen"):
        zone.name = "other"  # type: ignore[misc]


def test_durations_parse_and_serialise_canonically() -> None:
    service = models.Service.model_validate(
        {"name": "s", "hosts": [], "interval": "90s", "timeout": "0.5m", "check": {"kind": "ping"}}
    )
    assert service.interval == timedelta(seconds=90)
    dumped = service.model_dump(mode="json", exclude_none=True)
    assert (dumped["interval"], dumped["timeout"]) == ("1m30s", "30s")


def test_defaults() -> None:
    host = models.Host(name="h", address="h.example", zone="z")
    assert (host.labels, host.parents, host.check, host.display_name) == ({}, [], None, None)
    rule = models.Remediation.model_validate({"name": "r", "when": {}, "action": "a"})
    assert (rule.window, rule.cooldown) == (timedelta(hours=1), timedelta(minutes=10))
    assert (rule.max_attempts, rule.notifications) == (3, [])
    assert (rule.when.state, rule.when.hard) == ("CRITICAL", True)
    ssh = SshCheck.model_validate({"kind": "ssh", "command": ["x"], "key": "env:K"})
    assert (ssh.user, ssh.port, ssh.known_hosts) == ("watchkeeper", 22, "strict")
    mail = EmailChannel.model_validate({"name": "m", "kind": "email", "to": ["a@b"]})
    assert (mail.sender, mail.smtp_host, mail.smtp_port, mail.starttls) == (
        "watchkeeper@localhost",
        "localhost",
        25,
        True,
    )


def test_email_sender_is_written_as_from() -> None:
    raw = {"name": "m", "kind": "email", "to": ["a@b"], "from": "x@y"}
    mail = EmailChannel.model_validate(raw)
    assert mail.sender == "x@y"
    assert mail.model_dump(by_alias=True, exclude_none=True)["from"] == "x@y"


def test_host_binding_and_action_ref_pick_their_member() -> None:
    by_names = models.Service.model_validate({"name": "s", "hosts": ["a"]})
    by_labels = models.Service.model_validate({"name": "s", "hosts": {"labels": {"a": "b"}}})
    assert by_names.hosts == ["a"]
    assert by_labels.hosts == models.LabelSelector(labels={"a": "b"})
    named = models.Remediation.model_validate({"name": "r", "when": {}, "action": "a"})
    inline = models.Remediation.model_validate(
        {"name": "r", "when": {}, "action": {"kind": "command", "command": ["x"]}}
    )
    assert named.action == "a"
    assert isinstance(inline.action, WorkerCommandAction)


def test_threshold_ranges_are_kept_as_text() -> None:
    threshold = models.Threshold.model_validate({"warning": "@10:20", "critical": 5})
    assert (threshold.warning, threshold.critical) == ("@10:20", "5")


# Every field whose name says it holds a secret must take only a reference.
_SECRET_NAME = re.compile(r"(key|secret|password|credential|token)")


def _secret_fields() -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    for name, spec in json_schema()["$defs"].items():
        for field, prop in spec.get("properties", {}).items():
            if _SECRET_NAME.search(field):
                out.append((name, field, prop))
    return out


def test_the_secret_fields_are_the_expected_ones() -> None:
    assert sorted((m, f) for m, f, _ in _secret_fields()) == [
        ("DeploySsh", "key"),
        ("Ec2Platform", "credentials"),
        ("EmailChannel", "password"),
        ("HttpAction", "bearer_token"),
        ("HttpCheck", "bearer_token"),
        ("LibcloudPlatform", "credentials"),
        ("LxcPlatform", "credentials"),
        ("SshAction", "key"),
        ("SshCheck", "key"),
        ("WebhookChannel", "bearer_token"),
        ("WebhookChannel", "secret"),
    ]


@pytest.mark.parametrize(("model", "field", "prop"), _secret_fields())
def test_secret_fields_take_only_references(model: str, field: str, prop: dict[str, Any]) -> None:
    members = [p for p in prop.get("anyOf", [prop]) if p.get("type") != "null"]
    assert [m.get("pattern") for m in members] == [SECRET_REF_PATTERN]
