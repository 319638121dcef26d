"""The SBOM: SPDX 2.3, package URLs per ecosystem, the same file for the same content."""

from __future__ import annotations

from datetime import UTC, datetime

from watchkeeper import sbom

WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def test_components_become_spdx_packages_with_package_urls() -> None:
    components = [
        sbom.Component("deb", "python3", "3.11.2-1+b1"),
        sbom.Component("pypi", "Typing_Extensions", "4.16.0"),
    ]
    doc = sbom.document(components, WHEN)
    assert doc["spdxVersion"] == "SPDX-2.3"
    assert doc["creationInfo"]["created"] == "2026-01-01T00:00:00Z"
    refs = [p["externalRefs"][0]["referenceLocator"] for p in doc["packages"]]
    assert refs[0].startswith("pkg:deb/debian/python3@3.11.2-1+b1?arch=")
    assert refs[1] == "pkg:pypi/typing-extensions@4.16.0"
    assert sbom.document(components, WHEN) == doc


def test_this_environment_lists_itself() -> None:
    names = {c.name for c in sbom.python_distributions()}
    assert {"watchkeeper", "pydantic"} <= names
