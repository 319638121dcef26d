"""The public names of watchkeeper.sources stay listed and importable."""

from __future__ import annotations

import watchkeeper.sources as sources


def test_all_is_unique_and_resolves() -> None:
    assert len(set(sources.__all__)) == len(sources.__all__)  # ruff RUF022 keeps it sorted
    for name in sources.__all__:
        assert getattr(sources, name) is not None


def test_every_public_import_is_exported() -> None:
    public = {
        name
        for name, value in vars(sources).items()
        if not name.startswith("_") and not isinstance(value, type(sources))
    }
    assert public - {"annotations"} == set(sources.__all__)
