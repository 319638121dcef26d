"""The engine stays pure: no I/O libraries, no clock, and its exports stay listed."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import watchkeeper.engine as engine

SOURCES = sorted(Path(engine.__file__).parent.glob("*.py"))

#: Modules that would let the engine reach a database, the network, the disk or the clock.
FORBIDDEN = {
    "asyncio",
    "asyncssh",
    "datetime",
    "fastapi",
    "httpx",
    "os",
    "random",
    "socket",
    "sqlalchemy",
    "subprocess",
    "threading",
    "time",
}


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_no_io_or_clock_imports(path: Path) -> None:
    assert not imported(path) & FORBIDDEN


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_modules_stay_small(path: Path) -> None:
    assert len(path.read_text().splitlines()) < 400


def test_all_is_unique_and_resolves() -> None:
    assert len(set(engine.__all__)) == len(engine.__all__)  # ruff RUF022 keeps it sorted
    for name in engine.__all__:
        assert getattr(engine, name) is not None


def test_every_public_import_is_exported() -> None:
    public = {
        name
        for name, value in vars(engine).items()
        if not name.startswith("_") and not isinstance(value, type(engine))
    }
    assert public - {"annotations"} == set(engine.__all__)
