"""Flags several commands share, each also read from ``WATCHKEEPER_<NAME>``.

Nothing here imports the package's stages: building the parser must stay cheap, because
every command, ``--version`` included, builds it first.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

#: The manager's web address when ``--url`` is not given.
DEFAULT_URL = "http://127.0.0.1:8470"


def env_arg(
    parser: argparse.ArgumentParser, *flags: str, env: str, default: Any = None, **kw: Any
) -> None:
    """Add a flag whose default comes from ``WATCHKEEPER_<env>``; help shows the variable."""
    var = f"WATCHKEEPER_{env}"
    kind = kw.get("type", str)
    value = os.environ.get(var)
    kw["default"] = kind(value) if value is not None else default
    kw["help"] = f"{kw.get('help', '')} [env {var}]".strip()
    parser.add_argument(*flags, **kw)


class _ListAction(argparse.Action):
    """Each use adds its comma-separated items; the first use replaces the environment's."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        current = getattr(namespace, self.dest, None)
        kept = [] if current is None or current is self.default else list(current)
        setattr(namespace, self.dest, kept + split_items(str(values)))


def split_items(text: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``."""
    return [item.strip() for item in text.split(",") if item.strip()]


def env_list_arg(parser: argparse.ArgumentParser, *flags: str, env: str, **kw: Any) -> None:
    """A repeatable flag of comma lists, as a list; its default is ``WATCHKEEPER_<env>``
    (a comma list too), replaced, not extended, by the flag."""
    var = f"WATCHKEEPER_{env}"
    value = os.environ.get(var)
    kw["default"] = split_items(value) if value is not None else None
    kw["help"] = f"{kw.get('help', '')} [env {var}]".strip()
    parser.add_argument(*flags, action=_ListAction, **kw)


def store_args(parser: argparse.ArgumentParser) -> None:
    """``--data-dir`` and ``--database``: where the manager's state is."""
    env_arg(
        parser,
        "--data-dir",
        env="DATA_DIR",
        type=Path,
        default=Path(".watchkeeper"),
        help="directory for the SQLite database, keys and tokens (default ./.watchkeeper)",
    )
    env_arg(
        parser,
        "--database",
        env="DATABASE",
        help="database URL, e.g. postgresql+psycopg://user@host/db (default: SQLite in the "
        "data dir)",
    )


def source_args(parser: argparse.ArgumentParser) -> None:
    """How a document source is read: size limit, timeout, bearer token."""
    env_arg(
        parser,
        "--max-bytes",
        env="SOURCE_MAX_BYTES",
        type=int,
        default=64 * 1024 * 1024,
        help="refuse documents larger than this (default 64 MiB)",
    )
    env_arg(
        parser,
        "--timeout",
        env="SOURCE_TIMEOUT",
        type=float,
        default=10.0,
        help="seconds to wait for an http(s) source (default 10)",
    )
    env_arg(
        parser,
        "--bearer-token",
        env="SOURCE_BEARER_TOKEN",
        help="secret reference (env:NAME or file:/path) of a bearer token for the source",
    )


def format_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("text", "json"), default="text")


def status_file_arg(parser: argparse.ArgumentParser, default: str) -> None:
    """``--status-file``: where a long-running role says how it is, for `watchkeeper health`."""
    env_arg(
        parser,
        "--status-file",
        env="STATUS_FILE",
        type=Path,
        metavar="FILE",
        help=f"where this process records its role and liveness for `watchkeeper health` "
        f"(default {default})",
    )


def client_args(parser: argparse.ArgumentParser) -> None:
    """The flags of a command that asks a running manager through its API."""
    parser.add_argument(
        "--url",
        default=os.environ.get("WATCHKEEPER_URL", DEFAULT_URL),
        help=f"the manager's web address (default {DEFAULT_URL}) [env WATCHKEEPER_URL]",
    )
    parser.add_argument(
        "--token",
        default=None,
        help="an API token (default: WATCHKEEPER_TOKEN, else the manager token in the data "
        "dir) [env WATCHKEEPER_TOKEN]",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("WATCHKEEPER_DATA_DIR") or ".watchkeeper"),
        help="the manager's data directory, for its token (default ./.watchkeeper) "
        "[env WATCHKEEPER_DATA_DIR]",
    )
    parser.add_argument(
        "--ca-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="PEM certificates to trust for an https --url (a self-signed --tls-cert)",
    )
    parser.add_argument("--request-timeout", type=float, default=30.0, help="seconds (default 30)")
    format_arg(parser)
