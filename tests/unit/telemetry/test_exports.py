"""The public names of watchkeeper.telemetry stay listed and importable."""

from __future__ import annotations

import watchkeeper.telemetry as telemetry


def test_all_is_unique_and_resolves() -> None:
    assert len(set(telemetry.__all__)) == len(telemetry.__all__)  # ruff RUF022 keeps it sorted
    for name in telemetry.__all__:
        assert getattr(telemetry, name) is not None


def test_every_public_import_is_exported() -> None:
    public = {
        name
        for name, value in vars(telemetry).items()
        if not name.startswith("_") and not isinstance(value, type(telemetry))
    }
    assert public - {"annotations"} == set(telemetry.__all__)
