"""The public names of `watchkeeper.store`."""

from __future__ import annotations

import inspect

from watchkeeper import store


def test_all_is_sorted_and_complete() -> None:
    public = {
        name
        for name, value in vars(store).items()
        if not name.startswith("_")
        and not inspect.ismodule(value)
        and getattr(value, "__module__", "").startswith("watchkeeper.store")
    }
    assert store.__all__ == sorted(store.__all__)
    assert set(store.__all__) == public
