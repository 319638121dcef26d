"""What an import would add, change and remove, per kind and for the expanded checks."""

from __future__ import annotations

from typing import Any

from tests.fixtures import documents
from watchkeeper.document import models
from watchkeeper.document.diff import ConfigDiff, Delta, compare, diff
from watchkeeper.document.normalize import Hashes, snapshot
from watchkeeper.document.validate import validate


def hashes(raw: dict[str, Any]) -> Hashes:
    result = validate(raw)
    assert result.document is not None, [str(p) for p in result.problems]
    return snapshot(result.document).hashes()


def test_compare() -> None:
    delta = compare({"a": "1", "b": "2", "c": "3"}, {"b": "2", "c": "x", "d": "4", "0": "5"})
    assert delta == Delta(added=["0", "d"], changed=["c"], removed=["a"])
    assert delta.counts() == {"added": 2, "changed": 1, "removed": 1}
    assert delta


def test_an_empty_delta_is_false() -> None:
    assert not compare({"a": "1"}, {"a": "1"})
    assert not Delta()
    assert Delta().counts() == {"added": 0, "changed": 0, "removed": 0}


def test_identical_documents_give_an_empty_diff() -> None:
    result = diff(hashes(documents.full_document()), hashes(documents.full_document()))
    assert result.empty
    assert result.summary() == {}
    assert set(result.objects) == set(models.SECTIONS)
    assert not any(result.objects.values())
    assert not result.checks


def test_a_first_import_adds_everything() -> None:
    new = hashes(documents.full_document())
    result = diff(Hashes(), new)
    assert not result.empty
    assert result.checks.added == sorted(documents.FULL_CHECK_KEYS)
    for section in models.SECTIONS:
        names = [i["name"] for i in documents.full_document()[section]]
        if section == "hosts":  # the resource's slots are hosts too
            names.extend(documents.FULL_SLOT_HOSTS)
        assert result.objects[section] == Delta(added=sorted(names))
    assert result.summary()["checks"] == {
        "added": len(documents.FULL_CHECK_KEYS),
        "changed": 0,
        "removed": 0,
    }


def test_removing_everything() -> None:
    result = diff(hashes(documents.full_document()), hashes(documents.minimal_document()))
    assert result.checks.removed == sorted(documents.FULL_CHECK_KEYS)
    assert result.objects["hosts"] == Delta(
        removed=sorted(["db1", "gw", "web1", "web2", *documents.FULL_SLOT_HOSTS])
    )
    assert set(result.summary()) == {*models.SECTIONS, "checks"}


def test_added_changed_and_removed_per_kind_and_for_checks() -> None:
    old = documents.full_document()
    new = documents.full_document()
    new["hosts"].append({"name": "web3", "address": "192.0.2.13", "zone": "dmz",
                         "labels": {"role": "web"}})  # fmt: skip
    new["services"][1]["timeout"] = "8s"  # postgres changed
    del new["services"][5]  # memory removed
    del new["remediations"][2]
    new["remediations"].append({"name": "page-on-down", "when": {"state": "DOWN"},
                                "action": "flush-cache"})  # fmt: skip

    result = diff(hashes(old), hashes(new))
    assert result.objects["hosts"] == Delta(added=["web3"])
    assert result.objects["services"] == Delta(changed=["postgres"], removed=["memory"])
    assert result.objects["remediations"] == Delta(added=["page-on-down"], removed=["inline-flush"])
    assert result.checks == Delta(
        added=["web3!https"], changed=["db1!postgres"], removed=["web1!memory"]
    )
    assert result.summary() == {
        "hosts": {"added": 1, "changed": 0, "removed": 0},
        "services": {"added": 0, "changed": 1, "removed": 1},
        "remediations": {"added": 1, "changed": 0, "removed": 1},
        "checks": {"added": 1, "changed": 1, "removed": 1},
    }


def test_a_template_change_shows_as_changed_checks() -> None:
    new = documents.full_document()
    new["templates"][0]["retry_interval"] = "30s"
    result = diff(hashes(documents.full_document()), hashes(new))
    assert result.objects["templates"] == Delta(changed=["basic"])
    assert result.objects["services"] == Delta()
    assert result.checks == Delta(changed=["db1!disk", "gw!disk"])
    assert result.summary() == {
        "templates": {"added": 0, "changed": 1, "removed": 0},
        "checks": {"added": 0, "changed": 2, "removed": 0},
    }


def test_a_host_rename_removes_and_adds_its_checks() -> None:
    new = documents.full_document()
    new["hosts"][2]["name"] = "web9"
    new["services"][4]["hosts"] = ["web1", "web9"]
    result = diff(hashes(documents.full_document()), hashes(new))
    assert result.objects["hosts"] == Delta(added=["web9"], removed=["web2"])
    assert result.checks == Delta(
        added=["web9!https", "web9!load"], removed=["web2!https", "web2!load"]
    )


def test_only_checks_changed_is_not_empty() -> None:
    result = ConfigDiff(objects={"hosts": Delta()}, checks=Delta(changed=["gw"]))
    assert not result.empty
    assert result.summary() == {"checks": {"added": 0, "changed": 1, "removed": 0}}


def test_kinds_present_on_one_side_only() -> None:
    old = Hashes(objects={"zones": {"a": "1"}}, checks={})
    new = Hashes(objects={"hosts": {"h": "2"}}, checks={})
    result = diff(old, new)
    assert result.objects == {"zones": Delta(removed=["a"]), "hosts": Delta(added=["h"])}
