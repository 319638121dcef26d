"""Flattening a validated document into object and check records, and their hashes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures import documents
from watchkeeper.document import models, normalize
from watchkeeper.document.normalize import Snapshot, SnapshotCache, check_key, snapshot, spec_hash
from watchkeeper.document.validate import ValidationCache, validate


def document(raw: dict[str, Any], cache: ValidationCache | None = None) -> models.Document:
    result = validate(raw, cache=cache)
    assert result.document is not None, [str(p) for p in result.problems]
    return result.document


def snap(raw: dict[str, Any]) -> Snapshot:
    return snapshot(document(raw))


@pytest.fixture
def full() -> Snapshot:
    return snap(documents.full_document())


# --- keys and binding ---------------------------------------------------------------------


def test_check_key() -> None:
    assert check_key("web1", "https") == "web1!https"
    assert check_key("web1", None) == "web1"


def test_every_check_of_the_full_document(full: Snapshot) -> None:
    assert set(full.checks) == documents.FULL_CHECK_KEYS
    for key, record in full.checks.items():
        if record.spec["check"]["kind"] == "infra":  # a resource's own check: infra:NAME
            assert record.key == key == record.host == "infra:workers"
            assert record.service == "converged"
        elif record.spec["check"]["kind"] == "deploy":  # a deployed host's: deploy:HOST
            assert record.key == key == record.host == "deploy:db1"
            assert record.service == "converged"
            assert record.spec["check"] == {
                "kind": "deploy",
                "deployment": "db-base",
                "host": "db1",
            }
            assert record.spec["interval"] == 900.0
            assert record.spec["labels"]["watchkeeper.deployment"] == "db-base"
        else:
            assert record.key == key == check_key(record.host, record.service)
        assert record.spec["host"] == record.host
        assert record.spec["service"] == record.service
        assert record.spec["zone"] == record.zone
        assert record.hash == spec_hash(record.spec)


def test_host_checks_are_keyed_by_host_name(full: Snapshot) -> None:
    host_checks = {k for k, r in full.checks.items() if r.service is None}
    assert host_checks == {"gw", "web1"}  # web2 and db1 have no host check
    assert full.checks["gw"].spec["check"] == {"kind": "ping", "count": 5}


def test_label_selector_binding_respects_the_zone() -> None:
    raw = documents.full_document()
    raw["hosts"].append({"name": "api1", "address": "192.0.2.30", "zone": "core",
                         "labels": {"role": "web"}})  # fmt: skip
    checks = snap(raw).checks
    assert sorted(k for k in checks if k.endswith("!https")) == ["web1!https", "web2!https"]
    raw["services"][2]["hosts"] = {"labels": {"role": "web"}}  # without the zone
    checks = snap(raw).checks
    assert sorted(k for k in checks if k.endswith("!https")) == [
        "api1!https",
        "web1!https",
        "web2!https",
    ]


def test_a_selector_matching_nothing_expands_to_no_check() -> None:
    raw = documents.valid_documents()["selector-matches-nothing"]
    assert set(snap(raw).checks) == {"web1!ping"}


def test_a_host_listed_twice_gives_one_check() -> None:
    raw = documents.small_document()
    raw["services"][0]["hosts"] = ["web1", "web1"]
    assert set(snap(raw).checks) == {"web1!ping"}


def test_a_minimal_document_has_no_records() -> None:
    empty = snap(documents.minimal_document())
    assert empty.checks == {}
    assert empty.objects == {section: {} for section in models.SECTIONS}


# --- resolved settings --------------------------------------------------------------------


def test_template_merge_precedence(full: Snapshot) -> None:
    spec = full.checks["db1!disk"].spec
    assert spec == {
        # the service's own check replaces the template's whole
        "check": {
            "kind": "plugin",
            "command": ["/usr/lib/nagios/plugins/check_disk", "-w", "10%", "-c", "5%"],
            "timeout_state": "CRITICAL",
        },
        # the rest comes from template "basic"
        "interval": 120.0,
        "retry_interval": 20.0,
        "max_attempts": 5,
        "timeout": 20.0,
        # per metric: the service's "time" replaces the template's, "size" is inherited
        "thresholds": {
            "time": {"warning": "2", "critical": "@10:20"},
            "size": {"warning": "10:"},
        },
        "threshold_mode": "complement",
        "notifications": ["ops-webhook"],
        "renotify": None,
        "flapping": {"enabled": True, "low": 25.0, "high": 30.0},
        "host": "db1",
        "service": "disk",
        "zone": "core",
        "address": "192.0.2.20",
        "labels": {"role": "db"},
        "parents": ["gw"],
    }


def test_defaults(full: Snapshot) -> None:
    spec = full.checks["web1!memory"].spec
    assert (spec["interval"], spec["retry_interval"], spec["max_attempts"], spec["timeout"]) == (
        normalize.DEFAULT_INTERVAL.total_seconds(),
        normalize.DEFAULT_RETRY_INTERVAL.total_seconds(),
        normalize.DEFAULT_MAX_ATTEMPTS,
        normalize.DEFAULT_TIMEOUT.total_seconds(),
    )
    assert (spec["interval"], spec["retry_interval"], spec["max_attempts"], spec["timeout"]) == (
        60.0,
        15.0,
        3,
        10.0,
    )
    assert spec["thresholds"] == {}
    assert spec["notifications"] == []


def test_own_values_beat_defaults(full: Snapshot) -> None:
    spec = full.checks["web1!load"].spec
    assert (spec["interval"], spec["retry_interval"], spec["max_attempts"]) == (60.0, 10.0, 4)


def test_host_check_through_a_template(full: Snapshot) -> None:
    spec = full.checks["web1"].spec
    assert spec["check"] == {"kind": "ping", "count": 3}  # from template host-alive
    assert spec["max_attempts"] == 2
    assert spec["service"] is None
    assert spec["parents"] == ["gw"]


def test_a_check_from_the_template_only() -> None:
    raw = documents.full_document()
    del raw["services"][0]["check"]
    spec = snap(raw).checks["gw!disk"].spec
    assert spec["check"] == {
        "kind": "plugin",
        "command": ["/usr/lib/nagios/plugins/check_dummy", "0"],
    }


def test_the_documents_defaults_fill_what_a_check_leaves_unset() -> None:
    raw = documents.full_document()
    raw["defaults"] = {"timeout_state": "UNKNOWN", "out_of_bounds_state": "WARNING"}
    raw["services"][0]["check"]["timeout_state"] = "OK"
    checks = snap(raw).checks
    assert checks["gw!disk"].spec["check"]["timeout_state"] == "OK"  # its own wins
    assert checks["gw!disk"].spec["check"]["out_of_bounds_state"] == "WARNING"
    tcp = next(c for c in checks.values() if c.spec["check"]["kind"] == "tcp")
    assert "timeout_state" not in tcp.spec["check"]  # a kind without the field
    before = snap(documents.full_document()).checks["gw!disk"]
    assert checks["gw!disk"].hash != before.hash  # a changed default reschedules the check


def test_a_change_of_defaults_is_not_hidden_by_the_snapshot_cache() -> None:
    vcache, cache = ValidationCache(), SnapshotCache()
    raw = documents.full_document()
    first_doc = validate(raw, cache=vcache).document
    assert first_doc is not None
    first = snapshot(first_doc, cache).checks["gw!disk"]
    raw["defaults"] = {"out_of_bounds_state": "UNKNOWN"}
    second_doc = validate(raw, cache=vcache).document
    assert second_doc is not None and second_doc.services[0] is first_doc.services[0]
    second = snapshot(second_doc, cache).checks["gw!disk"]
    assert "out_of_bounds_state" not in first.spec["check"]
    assert second.spec["check"]["out_of_bounds_state"] == "UNKNOWN"


def test_own_empty_notifications_override_the_template() -> None:
    raw = documents.full_document()
    raw["services"][0]["notifications"] = []
    assert snap(raw).checks["db1!disk"].spec["notifications"] == []


def test_service_labels_are_merged_over_host_labels(full: Snapshot) -> None:
    assert full.checks["web1!https"].spec["labels"] == {
        "role": "web",
        "tier": "front",
        "team": "web",
    }
    raw = documents.full_document()
    raw["services"][2]["labels"] = {"role": "frontend"}
    assert snap(raw).checks["web1!https"].spec["labels"] == {"role": "frontend", "tier": "front"}


def test_object_records(full: Snapshot) -> None:
    expected = {
        s: sorted(item["name"] for item in documents.full_document()[s]) for s in models.SECTIONS
    }
    expected["hosts"] = sorted([*expected["hosts"], *documents.FULL_SLOT_HOSTS])
    assert {s: sorted(r) for s, r in full.objects.items()} == expected
    slot = full.objects["hosts"]["workers-1"].spec
    assert slot["address"] == ""  # filled from the platform's inventory, not the document
    assert slot["labels"] == {"role": "worker", "watchkeeper.resource": "workers",
                              "watchkeeper.platform": "lab"}  # fmt: skip
    mail = full.objects["notifications"]["ops-mail"]
    assert (mail.kind, mail.name) == ("notifications", "ops-mail")
    assert mail.spec["from"] == "watchkeeper@example.net"  # by alias, as written
    assert mail.hash == spec_hash(mail.spec)
    rule = full.objects["remediations"]["reboot-db"].spec
    assert (rule["window"], rule["cooldown"], rule["max_attempts"]) == ("1h", "10m", 3)
    assert "display_name" not in full.objects["hosts"]["web2"].spec  # None is left out


# --- hashes -------------------------------------------------------------------------------


def test_spec_hash_is_stable() -> None:
    # pinned: changing the hash function marks every record changed on upgrade
    assert spec_hash({"b": [1, 2.5, None], "a": "x"}) == "4fe33b344d21ff40c6e4580be8b8098d"
    assert spec_hash({"a": "x", "b": [1, 2.5, None]}) == spec_hash({"b": [1, 2.5, None], "a": "x"})
    assert spec_hash({"a": 1}) != spec_hash({"a": 2})


def test_hashes_are_the_same_for_the_same_document(full: Snapshot) -> None:
    again = snap(documents.full_document())
    assert again.hashes() == full.hashes()
    assert again == full


def test_hashes_view(full: Snapshot) -> None:
    hashes = full.hashes()
    assert set(hashes.checks) == documents.FULL_CHECK_KEYS
    assert hashes.checks["gw"] == full.checks["gw"].hash
    assert hashes.objects["zones"] == {n: r.hash for n, r in full.objects["zones"].items()}


def changed_checks(before: Snapshot, after: Snapshot) -> set[str]:
    assert set(before.checks) == set(after.checks)
    return {k for k in before.checks if before.checks[k].hash != after.checks[k].hash}


def changed_objects(before: Snapshot, after: Snapshot) -> set[tuple[str, str]]:
    return {
        (section, name)
        for section, records in before.objects.items()
        for name, record in records.items()
        if after.objects[section][name].hash != record.hash
    }


@pytest.mark.parametrize(
    ("path", "value", "checks", "objects"),
    [
        # a service setting changes that service's checks
        ("/services/4/max_attempts", 5, {"web1!load", "web2!load"}, {("services", "load")}),
        # a template setting propagates to every check that uses the template
        ("/templates/0/interval", "3m", {"db1!disk", "gw!disk"}, {("templates", "basic")}),
        ("/templates/0/thresholds/size/warning", "20:", {"db1!disk", "gw!disk"},
         {("templates", "basic")}),
        ("/templates/1/max_attempts", 4, {"web1"}, {("templates", "host-alive")}),
        # a template value the service overrides changes nothing effective
        ("/templates/0/check/command", ["/bin/true"], set(), {("templates", "basic")}),
        # host data is part of each of its checks
        ("/hosts/3/address", "192.0.2.99", {"db1!disk", "db1!postgres"}, {("hosts", "db1")}),
        ("/hosts/0/labels/rack", "r1", {"gw", "gw!disk", "gw!ping"}, {("hosts", "gw")}),
        ("/hosts/2/parents", [], {"web2!https", "web2!load"}, {("hosts", "web2")}),
        # setting what the template already gives: the object changes, its checks do not
        ("/services/0/interval", "2m", set(), {("services", "disk")}),
        # the same value written differently: durations are stored canonical, nothing changes
        ("/services/1/interval", "0.5m", set(), set()),
        # objects that expand to no check
        ("/notifications/2/command", ["/bin/page"], set(), {("notifications", "pager")}),
        ("/zones/0/description", "x", set(), {("zones", "core")}),
    ],
)  # fmt: skip
def test_a_hash_changes_exactly_when_an_effective_setting_changes(
    full: Snapshot, path: str, value: Any, checks: set[str], objects: set[tuple[str, str]]
) -> None:
    raw = documents.full_document()
    *parents, last = [int(p) if p.isdigit() else p for p in path.strip("/").split("/")]
    node: Any = raw
    for part in parents:
        node = node[part]
    node[last] = value
    after = snap(raw)
    assert changed_checks(full, after) == checks
    assert changed_objects(full, after) == objects


def test_the_same_duration_written_differently_hashes_the_same() -> None:
    raw = documents.full_document()
    raw["templates"][0]["interval"] = "120s"
    assert snap(raw).hashes() == snap(documents.full_document()).hashes()


# --- the snapshot cache -------------------------------------------------------------------


def test_snapshot_cache_reuses_unchanged_records_and_rebuilds_changed_ones() -> None:
    vcache, scache = ValidationCache(), SnapshotCache()
    first = snapshot(document(documents.full_document(), vcache), scache)

    raw = documents.full_document()
    raw["services"][3]["interval"] = "5m"
    doc = document(raw, vcache)
    second = snapshot(doc, scache)
    assert second == snapshot(doc)  # the cache changes nothing but the work done
    assert second.checks["db1!disk"] is first.checks["db1!disk"]
    assert second.objects["hosts"]["gw"] is first.objects["hosts"]["gw"]
    assert second.checks["gw!ping"] is not first.checks["gw!ping"]
    assert second.checks["gw!ping"].hash != first.checks["gw!ping"].hash

    raw["templates"][0]["max_attempts"] = 9
    doc = document(raw, vcache)
    third = snapshot(doc, scache)
    assert third == snapshot(doc)
    assert third.checks["db1!disk"].spec["max_attempts"] == 9
    assert third.checks["web1!load"] is second.checks["web1!load"]


def test_snapshot_cache_with_fresh_models_gives_the_same_snapshot() -> None:
    scache = SnapshotCache()
    first = snapshot(document(documents.full_document()), scache)
    second = snapshot(document(documents.full_document()), scache)  # new model instances
    assert first == second
