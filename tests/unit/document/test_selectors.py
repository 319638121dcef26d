"""Binding services to hosts: name lists and label selectors."""

from __future__ import annotations

import pytest

from watchkeeper.document import models
from watchkeeper.document.selectors import HostIndex


def host(name: str, zone: str, **labels: str) -> models.Host:
    return models.Host(name=name, address=f"{name}.example", zone=zone, labels=labels)


@pytest.fixture
def index() -> HostIndex:
    return HostIndex(
        [
            host("web2", "dmz", role="web", tier="front"),
            host("web1", "dmz", role="web", tier="front"),
            host("api1", "core", role="web", tier="back"),
            host("db1", "core", role="db"),
            host("bare", "core"),
        ]
    )


@pytest.mark.parametrize(
    ("labels", "zone", "expected"),
    [
        ({"role": "web"}, None, ["api1", "web1", "web2"]),
        ({"role": "web", "tier": "front"}, None, ["web1", "web2"]),
        ({"role": "web"}, "core", ["api1"]),
        ({}, "core", ["api1", "bare", "db1"]),
        ({}, None, ["api1", "bare", "db1", "web1", "web2"]),  # no constraint: every host
        ({"role": "db", "tier": "front"}, None, []),
        ({"role": "cache"}, None, []),
        ({"role": "web"}, "nowhere", []),
        ({"Role": "web"}, None, []),  # label keys and values are case-sensitive
        ({"role": "Web"}, None, []),
    ],
)
def test_select(
    index: HostIndex, labels: dict[str, str], zone: str | None, expected: list[str]
) -> None:
    assert index.select(models.LabelSelector(labels=labels, zone=zone)) == expected


def test_bind_a_name_list_keeps_order_drops_unknown_and_duplicates(index: HostIndex) -> None:
    assert index.bind(["web2", "nope", "db1", "web2"]) == ["web2", "db1"]
    assert index.bind([]) == []


def test_bind_a_selector(index: HostIndex) -> None:
    assert index.bind(models.LabelSelector(labels={"tier": "back"})) == ["api1"]


def test_an_empty_index() -> None:
    empty = HostIndex([])
    assert empty.select(models.LabelSelector()) == []
    assert empty.bind(["web1"]) == []
