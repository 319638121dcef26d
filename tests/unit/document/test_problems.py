"""Problems: JSON pointers, ordering and presentation."""

from __future__ import annotations

import pytest

from watchkeeper.document.problems import (
    Problem,
    Severity,
    errors,
    pointer,
    sort_problems,
    warnings,
)


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (("services", 3, "check", "port"), "/services/3/check/port"),
        (("hosts", 0, "labels", "kubernetes.io/role"), "/hosts/0/labels/kubernetes.io~1role"),
        (("a~b",), "/a~0b"),
        (("~1",), "/~01"),  # escape ~ first, or "~1" would read back as "/"
        (("thresholds", ""), "/thresholds/"),
        ((), ""),
    ],
)
def test_pointer_escapes_as_rfc_6901_says(parts: tuple[str | int, ...], expected: str) -> None:
    assert pointer(*parts) == expected


def test_str_and_as_dict() -> None:
    problem = Problem(pointer="/zones/0/name", message="bad", severity=Severity.WARNING)
    assert str(problem) == "/zones/0/name: bad"
    assert str(Problem(pointer="", message="top")) == "/: top"
    assert problem.as_dict() == {
        "pointer": "/zones/0/name",
        "message": "bad",
        "severity": "warning",
    }


def test_default_severity_is_error() -> None:
    assert Problem(pointer="/x", message="m").severity is Severity.ERROR


def test_sort_follows_document_order_with_numeric_indices() -> None:
    problems = [
        Problem(pointer="/services/10/name", message="a"),
        Problem(pointer="/services/2/check/port", message="b"),
        Problem(pointer="/hosts/1/zone", message="c"),
        Problem(pointer="/services/2", message="d"),
        Problem(pointer="/schema", message="e"),
    ]
    assert [p.pointer for p in sort_problems(problems)] == [
        "/hosts/1/zone",
        "/schema",
        "/services/2",
        "/services/2/check/port",
        "/services/10/name",
    ]


def test_sort_is_stable_for_equal_pointers() -> None:
    first = Problem(pointer="/a", message="first")
    second = Problem(pointer="/a", message="second")
    assert sort_problems([first, second]) == [first, second]


def test_errors_and_warnings_filter_by_severity() -> None:
    error = Problem(pointer="/a", message="e")
    warning = Problem(pointer="/b", message="w", severity=Severity.WARNING)
    assert errors([error, warning]) == [error]
    assert warnings([error, warning]) == [warning]


def test_sort_copes_with_keys_that_look_like_digits() -> None:
    problems = [
        Problem(pointer="/infrastructure/0/¹", message="superscript one is not an index"),
        Problem(pointer="/infrastructure/0/2", message="an index"),
        Problem(pointer="/infrastructure/0/10", message="an index"),
    ]
    assert [p.pointer for p in sort_problems(problems)] == [
        "/infrastructure/0/2",
        "/infrastructure/0/10",
        "/infrastructure/0/¹",
    ]
