"""The templates themselves: every macro a template calls is imported there, and no page
context can shadow a name every page relies on.

A template that calls ``when(...)`` without importing it renders fine until the branch
that calls it runs: then the page answers 500 (the remediation page did, once a job
existed). This reads every template's syntax tree instead of hoping a test reaches every
branch.
"""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest
from jinja2 import meta, nodes

from watchkeeper.web.ui.templating import COMMON_CONTEXT, ENV, TEMPLATES

MACROS = "ui/macros.html"


def _names(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(TEMPLATES)) for p in directory.rglob("*.html"))


def _macros() -> set[str]:
    tree = ENV.parse(ENV.loader.get_source(ENV, MACROS)[0])  # type: ignore[union-attr]
    return {node.name for node in tree.find_all(nodes.Macro)}


def _imported(tree: nodes.Template) -> set[str]:
    found: set[str] = set()
    for node in tree.find_all(nodes.FromImport):
        found.update(name if isinstance(name, str) else name[1] for name in node.names)
    found.update(node.name for node in tree.find_all(nodes.Macro))
    return found


@pytest.mark.parametrize("name", _names(TEMPLATES / "ui"))
def test_every_macro_a_template_calls_is_imported_there(name: str) -> None:
    source = ENV.loader.get_source(ENV, name)[0]  # type: ignore[union-attr]
    tree = ENV.parse(source)
    called = {
        node.node.name for node in tree.find_all(nodes.Call) if isinstance(node.node, nodes.Name)
    }
    missing = (called & _macros()) - _imported(tree)
    assert not missing, f"{name} calls {sorted(missing)} without importing them from {MACROS}"
    assert meta.find_undeclared_variables(tree) & _macros() <= _imported(tree)


def test_a_page_context_cannot_shadow_a_global_or_the_common_context() -> None:
    from starlette.requests import Request

    from watchkeeper.web.security import Principal, Role
    from watchkeeper.web.ui.templating import render

    request = Request({"type": "http", "path": "/", "query_string": b"", "headers": []})
    principal = Principal(name="ann", role=Role.VIEWER, via="session")
    for name in ("app_version", *(n for n in COMMON_CONTEXT if n not in ("request", "principal"))):
        with pytest.raises(ValueError, match=name):
            render(request, "ui/not_found.html", principal, message="x", **{name: "oops"})
    assert "version" not in ENV.globals  # a route may well pass its own `version`


def test_strict_undefined_catches_what_is_not_passed() -> None:
    with pytest.raises(jinja2.UndefinedError):
        ENV.from_string("{{ nothing.here }}").render()
