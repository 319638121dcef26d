"""Shared fixtures; each fixture module lives in tests/fixtures/."""

from __future__ import annotations

pytest_plugins = [
    "tests.fixtures.database",
    "tests.fixtures.jobserver",
    "tests.fixtures.moto",
    "tests.fixtures.faultproxy",
]
