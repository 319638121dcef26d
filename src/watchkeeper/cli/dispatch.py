"""A command named by its module and function, imported only when it runs.

The parser knows every command; a run imports one. ``watchkeeper --version`` and
``watchkeeper worker`` so never pay for the manager, the web app or the store.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

Implementation = Callable[[argparse.Namespace], Awaitable[int]]


@dataclass(frozen=True)
class Command:
    """``watchkeeper.commands.<module>.<name>``, an ``async (args) -> exit code``."""

    module: str
    name: str

    def resolve(self) -> Implementation:
        module = importlib.import_module(f"watchkeeper.commands.{self.module}")
        return cast(Implementation, getattr(module, self.name))

    def __call__(self, args: argparse.Namespace) -> Awaitable[int]:
        return self.resolve()(args)


def command(ref: str) -> Command:
    """``"config_cmds:validate"`` as a `Command`."""
    module, _, name = ref.partition(":")
    return Command(module, name)
