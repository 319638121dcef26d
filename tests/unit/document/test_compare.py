"""The readable diff of two stored documents, by section, object and field."""

from __future__ import annotations

from watchkeeper.document import compare


def test_config_diff_names_objects_and_changed_fields() -> None:
    old = {
        "schema": "watchkeeper/v1",
        "hosts": [
            {"name": "a", "address": "10.0.0.1", "zone": "core", "labels": {"x/y": "1"}},
            {"name": "gone", "address": "10.0.0.9", "zone": "core"},
        ],
        "services": [{"name": "ssh", "hosts": ["a"], "check": {"kind": "tcp", "port": 22}}],
    }
    new = {
        "schema": "watchkeeper/v2",
        "hosts": [
            {"name": "a", "address": "10.0.0.2", "zone": "core", "labels": {}},
            {"name": "b", "address": "10.0.0.3", "zone": "core"},
        ],
        "services": [{"name": "ssh", "hosts": ["a", "b"], "check": {"kind": "tcp", "port": 2222}}],
        "zones": [{"name": "core"}],
    }
    found = compare.config_diff(old, new)
    hosts, services, zones = found.sections
    assert (hosts.section, hosts.added, hosts.removed) == ("hosts", ["b"], ["gone"])
    assert [c.name for c in hosts.changed] == ["a"]
    assert hosts.changed[0].fields == [
        compare.FieldChange(pointer="/address", change="changed", old="10.0.0.1", new="10.0.0.2"),
        compare.FieldChange(pointer="/labels/x~1y", change="removed", old="1"),
    ]
    assert services.changed[0].fields == [
        compare.FieldChange(pointer="/check/port", change="changed", old=22, new=2222),
        compare.FieldChange(pointer="/hosts/1", change="added", new="b"),
    ]
    assert (zones.added, zones.removed, zones.changed) == (["core"], [], [])
    assert found.fields == [
        compare.FieldChange(
            pointer="/schema", change="changed", old="watchkeeper/v1", new="watchkeeper/v2"
        )
    ]
    assert compare.config_diff(old, old).empty
