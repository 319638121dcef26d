"""The public names of watchkeeper.worker.executors stay listed and importable."""

from __future__ import annotations

import watchkeeper.worker.executors as executors


def test_all_is_unique_and_resolves() -> None:
    assert len(set(executors.__all__)) == len(executors.__all__)  # ruff RUF022 keeps it sorted
    for name in executors.__all__:
        assert getattr(executors, name) is not None


def test_every_public_import_is_exported() -> None:
    public = {
        name
        for name, value in vars(executors).items()
        if not name.startswith("_") and not isinstance(value, type(executors))
    }
    assert public - {"annotations"} == set(executors.__all__)
