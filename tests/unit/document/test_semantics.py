"""Rules across objects: unique names, references, parent cycles, checks, warnings."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.fixtures import documents
from watchkeeper.document import models
from watchkeeper.document.problems import Severity
from watchkeeper.document.validate import validate


def set_at(raw: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    *parents, last = [int(p) if p.isdigit() else p for p in path.strip("/").split("/")]
    node: Any = raw
    for part in parents:
        node = node[part]
    node[last] = value
    return raw


def errors(raw: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p.pointer, p.message) for p in validate(raw).errors]


def warnings(raw: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p.pointer, p.message) for p in validate(raw).warnings]


def hosts_document(parents: dict[str, list[str]]) -> dict[str, Any]:
    """A document with one zone and a host per key, with the given parents."""
    raw = documents.minimal_document()
    raw["zones"] = [{"name": "z"}]
    raw["hosts"] = [
        {"name": name, "address": f"{name}.example", "zone": "z", "parents": ps}
        for name, ps in parents.items()
    ]
    return raw


# --- unique names -------------------------------------------------------------------------


@pytest.mark.parametrize("section", list(models.SECTIONS))
def test_names_are_unique_per_section(section: str) -> None:
    raw = documents.full_document()
    first = raw[section][0]
    raw[section].append(copy.deepcopy(first))
    index = len(raw[section]) - 1
    assert errors(raw) == [
        (
            f"/{section}/{index}/name",
            f"duplicate name {first['name']!r}, first used at /{section}/0",
        )
    ]


def test_the_same_name_in_different_sections_is_fine() -> None:
    raw = documents.full_document()
    raw["services"][0]["name"] = "gw"  # a host is called gw too
    raw["remediations"][0]["name"] = "restart-nginx"  # as is an action
    assert validate(raw).ok


def test_every_duplicate_is_reported() -> None:
    raw = documents.small_document()
    raw["zones"] = [{"name": "core"}] * 3
    assert errors(raw) == [
        ("/zones/1/name", "duplicate name 'core', first used at /zones/0"),
        ("/zones/2/name", "duplicate name 'core', first used at /zones/0"),
    ]


# --- references ---------------------------------------------------------------------------

REFERENCES = [
    # (path, value, pointer, message)
    ("/hosts/0/zone", "cor", "/hosts/0/zone", "unknown zone 'cor' (did you mean 'core'?)"),
    ("/hosts/1/parents/0", "gw2", "/hosts/1/parents/0", "unknown host 'gw2' (did you mean 'gw'?)"),
    ("/hosts/1/check/template", "host-alve", "/hosts/1/check/template",
     "unknown template 'host-alve' (did you mean 'host-alive'?)"),
    ("/hosts/0/check/notifications", ["pagerr"], "/hosts/0/check/notifications/0",
     "unknown notification channel 'pagerr' (did you mean 'pager'?)"),
    ("/templates/0/notifications/0", "ops-hook", "/templates/0/notifications/0",
     "unknown notification channel 'ops-hook' (did you mean 'ops-webhook'?)"),
    ("/services/0/hosts/1", "zzz", "/services/0/hosts/1", "unknown host 'zzz'"),
    ("/services/2/hosts/zone", "dmzz", "/services/2/hosts/zone",
     "unknown zone 'dmzz' (did you mean 'dmz'?)"),
    ("/services/0/template", "basik", "/services/0/template",
     "unknown template 'basik' (did you mean 'basic'?)"),
    ("/services/2/notifications/1", "pagr", "/services/2/notifications/1",
     "unknown notification channel 'pagr' (did you mean 'pager'?)"),
    ("/actions/3/action/platform", "lab2", "/actions/3/action/platform",
     "unknown platform 'lab2' (did you mean 'lab'?)"),
    ("/remediations/1/when/host", "db2", "/remediations/1/when/host",
     "unknown host 'db2' (did you mean 'db1'?)"),
    ("/remediations/0/when/service", "http", "/remediations/0/when/service",
     "unknown service 'http' (did you mean 'https'?)"),
    ("/remediations/0/action", "restart", "/remediations/0/action",
     "unknown action 'restart' (did you mean 'restart-nginx'?)"),
    ("/remediations/2/action", {"kind": "platform", "platform": "lba", "operation": "stop"},
     "/remediations/2/action/platform", "unknown platform 'lba' (did you mean 'lab'?)"),
    ("/remediations/0/notifications/0", "nobody", "/remediations/0/notifications/0",
     "unknown notification channel 'nobody'"),
    ("/platforms/0/zone", "edge", "/platforms/0/zone", "unknown zone 'edge'"),
    ("/infrastructure/0/platform", "lab-2", "/infrastructure/0/platform",
     "unknown platform 'lab-2' (did you mean 'lab'?)"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "value", "pointer", "message"), REFERENCES)
def test_every_reference_resolves(path: str, value: Any, pointer: str, message: str) -> None:
    raw = set_at(documents.full_document(), path, value)
    assert errors(raw) == [(pointer, message)]


def test_a_host_cannot_be_its_own_parent() -> None:
    raw = set_at(documents.full_document(), "/hosts/1/parents", ["gw", "web1"])
    assert errors(raw) == [("/hosts/1/parents/1", "a host cannot be its own parent")]


def test_a_reference_to_an_object_that_failed_shape_is_not_reported_again() -> None:
    raw = documents.full_document()
    raw["zones"][0]["colour"] = "red"  # zone "core" is broken, but it exists
    raw["templates"][0]["interval"] = "often"  # so is template "basic"
    assert errors(raw) == [
        ("/templates/0/interval", "'often' is not a duration: use a number with a unit "
         "(ms, s, m, h, d, w), for example 30s, 5m, 1h30m"),
        ("/zones/0/colour", "unknown field 'colour'"),
    ]  # fmt: skip


def test_references_to_a_renamed_object_are_all_reported() -> None:
    raw = set_at(documents.full_document(), "/platforms/0/name", "lab2")
    assert errors(raw) == [
        ("/actions/3/action/platform", "unknown platform 'lab' (did you mean 'lab2'?)"),
        ("/infrastructure/0/platform", "unknown platform 'lab' (did you mean 'lab2'?)"),
        ("/services/6/check/platform", "unknown platform 'lab' (did you mean 'lab2'?)"),
    ]


# --- parent cycles ------------------------------------------------------------------------


def test_two_host_cycle() -> None:
    raw = set_at(documents.full_document(), "/hosts/0/parents", ["db1"])
    assert errors(raw) == [("/hosts/0/parents", "parent cycle: gw -> db1 -> gw")]


def test_longer_cycle_is_reported_once() -> None:
    raw = hosts_document({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]})
    assert errors(raw) == [("/hosts/0/parents", "parent cycle: a -> b -> c -> a")]


def test_separate_cycles_are_each_reported() -> None:
    raw = hosts_document({"a": ["b"], "b": ["a"], "c": ["d"], "d": ["c"]})
    assert errors(raw) == [
        ("/hosts/0/parents", "parent cycle: a -> b -> a"),
        ("/hosts/2/parents", "parent cycle: c -> d -> c"),
    ]


def test_a_diamond_is_not_a_cycle() -> None:
    raw = hosts_document({"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"], "e": ["d", "a"]})
    assert validate(raw).ok


def test_a_self_parent_is_not_also_a_cycle() -> None:
    raw = hosts_document({"a": ["a"]})
    assert errors(raw) == [("/hosts/0/parents/0", "a host cannot be its own parent")]


def test_a_cycle_through_an_unknown_parent_is_only_a_reference_problem() -> None:
    raw = hosts_document({"a": ["b", "x"], "b": ["a"]})
    assert errors(raw) == [
        ("/hosts/0/parents", "parent cycle: a -> b -> a"),
        ("/hosts/0/parents/1", "unknown host 'x'"),
    ]


def test_a_deep_chain_does_not_recurse() -> None:
    names = [f"h{i}" for i in range(3000)]
    raw = hosts_document({n: ([names[i - 1]] if i else []) for i, n in enumerate(names)})
    assert validate(raw).ok
    raw["hosts"][0]["parents"] = [names[-1]]
    (pointer, message), *rest = errors(raw)
    assert rest == []
    assert pointer == "/hosts/0/parents"
    assert message.startswith("parent cycle: h0 -> h2999 -> h2998")


# --- every check resolves -----------------------------------------------------------------


def test_a_service_needs_a_check() -> None:
    raw = documents.full_document()
    del raw["services"][1]["check"]
    assert errors(raw) == [("/services/1", "needs a check, directly or through a template")]


def test_a_template_without_check_does_not_provide_one() -> None:
    raw = documents.full_document()
    raw["templates"].append({"name": "slow", "interval": "5m"})
    del raw["services"][1]["check"]
    raw["services"][1]["template"] = "slow"
    assert errors(raw) == [("/services/1", "needs a check: neither it nor template 'slow' has one")]


def test_a_template_check_is_enough() -> None:
    raw = documents.full_document()
    del raw["services"][0]["check"]  # template "basic" has one
    assert validate(raw).ok


def test_a_host_check_needs_a_check() -> None:
    raw = set_at(documents.full_document(), "/hosts/2/check", {"interval": "30s"})
    assert errors(raw) == [("/hosts/2/check", "needs a check, directly or through a template")]


def test_an_unknown_template_is_not_also_a_missing_check() -> None:
    raw = documents.full_document()
    del raw["services"][1]["check"]
    raw["services"][1]["template"] = "nope"
    assert errors(raw) == [("/services/1/template", "unknown template 'nope'")]


# --- remediation triggers -----------------------------------------------------------------


@pytest.mark.parametrize("state", ["DOWN", ["CRITICAL", "DOWN"]])
def test_down_is_not_a_service_state(state: Any) -> None:
    raw = set_at(documents.full_document(), "/remediations/0/when/state", state)
    assert errors(raw) == [
        (
            "/remediations/0/when/state",
            "DOWN is a host state; a rule on a service matches WARNING, CRITICAL or UNKNOWN",
        )
    ]


def test_down_is_a_host_state() -> None:
    raw = documents.full_document()
    assert raw["remediations"][1]["when"] == {"host": "db1", "state": "DOWN"}
    assert validate(raw).ok


# --- warnings -----------------------------------------------------------------------------

NOWHERE = "the label selector matches no host; the service runs nowhere"


@pytest.mark.parametrize(
    "selector",
    [
        {"labels": {"role": "nothing"}},
        {"labels": {"role": "web"}, "zone": "core"},  # web hosts are all in dmz
        {"labels": {"role": "web", "tier": "back"}},
        {"zone": "empty"},
    ],
)
def test_a_selector_matching_no_host_is_a_warning(selector: dict[str, Any]) -> None:
    raw = documents.full_document()
    raw["zones"].append({"name": "empty"})
    raw["services"][2]["hosts"] = selector
    result = validate(raw)
    assert result.ok
    assert [(p.pointer, p.message, p.severity) for p in result.problems] == [
        ("/services/2/hosts", NOWHERE, Severity.WARNING)
    ]


@pytest.mark.parametrize(
    "selector", [{}, {"labels": {}}, {"zone": "core"}, {"labels": {"tier": "front"}}]
)
def test_a_selector_matching_some_host_is_fine(selector: dict[str, Any]) -> None:
    raw = set_at(documents.full_document(), "/services/2/hosts", selector)
    assert validate(raw).problems == []


def test_an_empty_host_list_is_no_warning() -> None:
    raw = set_at(documents.full_document(), "/services/1/hosts", [])
    assert validate(raw).problems == []


TIMEOUT = "timeout is longer than the interval: checks may overlap"


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("/services/1/timeout", "31s", [("/services/1/timeout", TIMEOUT)]),  # own interval 30s
        ("/services/1/timeout", "30s", []),
        ("/services/0/timeout", "3m", [("/services/0/timeout", TIMEOUT)]),  # template: 2m
        ("/services/0/interval", "10s", [("/services/0/timeout", TIMEOUT)]),  # template: 20s
        ("/templates/0/timeout", "5m", [("/services/0/timeout", TIMEOUT)]),
        ("/services/3/timeout", "1h", [("/services/3/timeout", TIMEOUT)]),  # default: 60s
        ("/services/3/timeout", "60s", []),
        ("/services/3/interval", "5s", [("/services/3/timeout", TIMEOUT)]),  # default: 10s
    ],
)
def test_timeout_longer_than_interval_is_a_warning(
    path: str, value: str, expected: list[tuple[str, str]]
) -> None:
    raw = set_at(documents.full_document(), path, value)
    result = validate(raw)
    assert result.ok
    assert warnings(raw) == expected


# --- deployments --------------------------------------------------------------------------


def deployment_document(*deployments: dict[str, Any]) -> dict[str, Any]:
    raw = documents.full_document()
    raw["deployments"] = [
        {"name": f"d{i}", "ssh": {"key": "env:K"}, "files": [{"path": "/etc/a", "content": "x"}],
         **spec} for i, spec in enumerate(deployments)
    ]  # fmt: skip
    return raw


def test_a_deployment_names_known_hosts_and_channels() -> None:
    raw = deployment_document({"hosts": ["db1", "dbx"], "notifications": ["nope"]})
    assert errors(raw) == [
        ("/deployments/0/hosts/1", "unknown host 'dbx' (did you mean 'db1'?)"),
        ("/deployments/0/notifications/0", "unknown notification channel 'nope'"),
    ]


def test_a_host_takes_one_deployment() -> None:
    raw = deployment_document({"hosts": ["db1"]}, {"hosts": {"labels": {"role": "db"}}})
    assert errors(raw) == [
        ("/deployments/1/hosts", "host 'db1' is already deployed by 'd0'; a host takes one "
         "deployment (merge them)"),
    ]  # fmt: skip


def test_a_slot_of_a_platform_takes_no_deployment() -> None:
    assert errors(deployment_document({"hosts": ["workers-1"]})) == [
        ("/deployments/0/hosts/0", "host 'workers-1' is a slot of resource 'workers': a "
         "platform manages it, so its image and the resource shape it, not a deployment"),
    ]  # fmt: skip
    by_label = deployment_document({"hosts": {"labels": {"role": "worker"}}})
    assert [p for p, _ in errors(by_label)] == ["/deployments/0/hosts"] * 3


def test_a_deployment_selector_matching_no_host_is_a_warning() -> None:
    raw = deployment_document({"hosts": {"labels": {"role": "nothing"}}})
    assert errors(raw) == []
    assert warnings(raw) == [
        ("/deployments/0/hosts", "the label selector matches no host; the deployment deploys "
         "nowhere"),
    ]  # fmt: skip
