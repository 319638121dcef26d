"""What several commands share: reading a candidate, opening the store, printing."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

from watchkeeper import store
from watchkeeper.sources import open_source

DATABASE_FILE = "watchkeeper.db"


async def read_candidate(args: argparse.Namespace) -> tuple[bytes, str]:
    """Fetch the candidate named by ``args.source`` once: ``-`` reads standard input."""
    if args.source == "-":
        return sys.stdin.buffer.read(), "stdin"
    source = open_source(
        args.source,
        timeout=args.timeout,
        max_bytes=args.max_bytes,
        bearer_token=args.bearer_token,
    )
    try:
        candidate = await source.fetch()
    finally:
        await source.aclose()
    assert candidate is not None, "a first fetch always returns a candidate"
    return candidate.body, candidate.source


def database(args: argparse.Namespace) -> store.Database:
    """The store the flags name: a URL, or SQLite in the data dir."""
    if args.database:
        return store.Database.from_url(args.database)
    return store.Database.for_data_dir(Path(args.data_dir))


def database_exists(args: argparse.Namespace) -> bool:
    """Whether there is a store to read; a URL is assumed to exist (connecting tells)."""
    return bool(args.database) or (Path(args.data_dir) / DATABASE_FILE).exists()


def emit_json(value: Any) -> None:
    """Print a JSON value for machines."""
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")
