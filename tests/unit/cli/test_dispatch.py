"""Commands are named by reference and imported when they run: every reference resolves,
and the cheap commands do not import the manager."""

from __future__ import annotations

import argparse
import inspect
import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from watchkeeper.cli import build_parser, groups
from watchkeeper.cli.dispatch import Command, command
from watchkeeper.web.security.roles import Role


def leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[
    tuple[tuple[str, ...], argparse.ArgumentParser]
]:  # fmt: skip
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
    for action in subs:
        for name, child in action.choices.items():
            yield from leaves(child, (*path, name))


def test_every_command_names_an_async_implementation_that_exists() -> None:
    found = list(leaves(build_parser()))
    assert len(found) >= 38  # every leaf of every group
    for path, parser in found:
        func = parser.get_default("func")
        assert isinstance(func, Command), path
        implementation = func.resolve()
        assert inspect.iscoroutinefunction(implementation), (path, func)


def test_a_reference_reads_module_and_function() -> None:
    assert command("config_cmds:validate") == Command("config_cmds", "validate")


def test_the_parser_spells_out_every_role() -> None:
    assert tuple(r.value for r in Role) == groups.ROLE_NAMES


HEAVY = ["watchkeeper.runtime", "watchkeeper.store", "watchkeeper.web", "fastapi", "sqlalchemy"]


def loaded_after(code: str) -> set[str]:
    """The modules among `HEAVY` a fresh interpreter has after running ``code``."""
    probe = (
        f"{code}\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return set(json.loads(out.splitlines()[-1]))


@pytest.mark.parametrize(
    "argv",
    [["--version"], ["worker", "--help"], ["health", "--help"], ["deploy", "status", "--help"]],
)
def test_parsing_imports_nothing_of_the_manager(argv: list[str]) -> None:
    code = (
        f"from watchkeeper.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass"
    )
    assert loaded_after(code) == set()


def test_the_worker_and_health_commands_import_nothing_of_the_manager() -> None:
    code = "import watchkeeper.commands.worker_cmds, watchkeeper.commands.health_cmds"
    assert loaded_after(code) == set()
    assert loaded_after("import watchkeeper.commands.run_cmds") == set(HEAVY)
