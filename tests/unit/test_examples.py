"""Every bundled example document is valid, with no warning: a newcomer starts from these."""

from __future__ import annotations

from pathlib import Path

import pytest

from watchkeeper.document.validate import validate_bytes

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.json"))


def test_there_are_examples() -> None:
    assert {p.name for p in EXAMPLES} >= {"demo.json", "infra-moto.json", "deploy.json"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_an_example_is_valid_without_warnings(path: Path) -> None:
    result = validate_bytes(path.read_bytes())
    assert result.ok, [str(p) for p in result.problems]
    assert result.warnings == [], [str(p) for p in result.warnings]
