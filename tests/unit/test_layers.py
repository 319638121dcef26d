"""The package layout is a stack: each package imports only those below it, never in a cycle.

The order is the data flow's, read bottom up: the shared vocabulary (errors, results,
plugins, jobs), the document, the engine, the store, the stages after the engine, the
transport and the workers, the manager that wires the stages, the web on its ports, the
composition root, the CLI. An upward import (the store reaching into alarms, a stage
into the manager, the web into the engine runner) fails here, naming the two modules.
The pure cores import no I/O library at all.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import watchkeeper

ROOT = Path(watchkeeper.__file__).parent

#: Lowest first. A package may import its own layer's packages and any below.
LAYERS: list[set[str]] = [
    {"errors"},
    {
        "clock",
        "results",
        "secrets",
        "backoff",
        "latch",
        "logs",
        "plugins",
        "private",
        "__init__",
        "sbom",
    },
    {"addresses", "liveness"},
    {"jobs"},
    {"document"},
    {"engine"},
    {"store"},
    {"cluster"},
    {"sources"},
    {"telemetry"},
    {"notify"},
    {"alarms"},
    {"transport"},
    {"remediation"},
    {"infra"},
    {"deploy"},
    {"worker"},
    {"manager"},
    {"web"},
    {"runtime"},
    {"commands"},
    {"cli"},
    {"__main__"},
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}

#: Libraries that reach a database, the network, processes, threads, the disk or the clock.
IO_LIBRARIES = {
    "aiosqlite", "alembic", "asyncio", "asyncssh", "boto3", "fastapi", "httpx", "libcloud",
    "os", "psycopg", "shutil", "smtplib", "socket", "sqlalchemy", "ssl", "subprocess",
    "threading", "time", "uvicorn",
}  # fmt: skip
#: Modules that decide and must stay pure (the engine has its own, stricter test).
PURE = [
    "document",
    "engine",
    "jobs/payloads.py",
    "jobs/pools.py",
    "jobs/queue.py",
    "jobs/routing.py",
    "jobs/states.py",
    "alarms/flapping.py",
    "alarms/lifecycle.py",
    "alarms/thresholds.py",
    "alarms/values.py",
    "telemetry/perfdata.py",
    "telemetry/rollup.py",
    "remediation/escalation.py",
    "remediation/guardrails.py",
    "remediation/planner.py",
    "remediation/rules.py",
    "remediation/targets.py",
    "deploy/desired.py",
    "deploy/items.py",
    "deploy/plan.py",
    "deploy/rollout.py",
]
MAX_LINES = 800


def modules() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py") if "migrations" not in p.parts)


def package_of(path: Path) -> str:
    relative = path.relative_to(ROOT)
    return relative.parts[0].removesuffix(".py")


def imports(path: Path) -> Iterator[tuple[str, int]]:
    """Every ``watchkeeper.X`` a module imports (at any depth: in functions too), by line."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module]
            if node.module == "watchkeeper":
                names = [f"watchkeeper.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "watchkeeper" and len(parts) > 1:
                yield parts[1], node.lineno


def libraries(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


def test_every_package_has_a_layer() -> None:
    packages = {package_of(p) for p in modules()}
    assert packages - RANK.keys() == set(), "add new packages to LAYERS"


def test_no_package_imports_upward() -> None:
    upward = []
    for path in modules():
        source = package_of(path)
        for target, line in imports(path):
            if target == "__version__":
                continue
            if RANK.get(target, -1) > RANK[source]:
                upward.append(f"{path.relative_to(ROOT)}:{line} imports watchkeeper.{target}")
    assert upward == []


def test_the_package_graph_has_no_cycle() -> None:
    edges: dict[str, set[str]] = {}
    for path in modules():
        source = package_of(path)
        for target, _ in imports(path):
            if target != source and target in RANK:
                edges.setdefault(source, set()).add(target)
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            raise AssertionError("package cycle: " + " -> ".join([*path[path.index(node) :], node]))
        if node in done:
            return
        for nxt in sorted(edges.get(node, ())):
            visit(nxt, [*path, node])
        done.add(node)

    for node in sorted(edges):
        visit(node, [])


def _pure_modules() -> list[Path]:
    found: list[Path] = []
    for entry in PURE:
        target = ROOT / entry
        found.extend(sorted(target.rglob("*.py")) if target.is_dir() else [target])
    return found


@pytest.mark.parametrize("path", _pure_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_pure_cores_import_no_io_library(path: Path) -> None:
    assert path.exists()
    assert libraries(path) & IO_LIBRARIES == set()


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_is_a_god_module(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= MAX_LINES
