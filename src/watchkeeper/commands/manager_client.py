"""How the CLI talks to a running manager: its address, the token, one httpx client.

``watchkeeper infra ...`` and ``watchkeeper deploy ...`` ask the manager's stages through
its API, with the same flags (`watchkeeper.cli.flags.client_args`: ``--url``, ``--token``
or the manager token in ``--data-dir``, ``--ca-file``) and the same reading of its error
answers.
"""

from __future__ import annotations

import argparse
import os
import ssl
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

from watchkeeper.commands.common import emit_json
from watchkeeper.commands.exits import EXIT_INVALID, EXIT_OK, EXIT_USAGE
from watchkeeper.errors import UsageError
from watchkeeper.private import TOKEN_FILE

#: How a command prints a successful answer.
Show = Callable[[Any], None]


def _token(args: argparse.Namespace) -> str | None:
    given = args.token or os.environ.get("WATCHKEEPER_TOKEN")
    if given:
        return str(given).strip()
    path = Path(args.data_dir) / TOKEN_FILE
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None  # the manager says what it needs (401)
    except OSError as exc:
        raise UsageError(f"--data-dir: cannot read the manager token {path}: {exc}") from exc


def client(args: argparse.Namespace) -> httpx.AsyncClient:
    token = _token(args)
    verify: ssl.SSLContext | bool = True
    if args.ca_file is not None:
        try:
            verify = ssl.create_default_context(cafile=str(args.ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"--ca-file: {exc}") from exc
    return httpx.AsyncClient(
        base_url=str(args.url).rstrip("/"),
        headers={"Authorization": f"Bearer {token}"} if token else {},
        timeout=args.request_timeout,
        verify=verify,
        # Tests hand in a transport (the app itself, in process); None: the network.
        transport=getattr(args, "transport", None),
    )


def detail(response: httpx.Response) -> str:
    """The API's message: ``{"detail": "..."}``, or FastAPI's list of problems."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return response.text.strip()[:500] or response.reason_phrase
    if isinstance(detail, list):
        parts = []
        for problem in detail:
            where = ".".join(str(p) for p in problem.get("loc", ()) if p != "body")
            parts.append(f"{where}: {problem.get('msg', '')}" if where else problem.get("msg"))
        return "; ".join(str(p) for p in parts)
    return str(detail)


async def call(
    args: argparse.Namespace,
    method: str,
    path: str,
    show: Show,
    *,
    body: Mapping[str, Any] | None = None,
    exit_of: Callable[[Any], int] = lambda answer: EXIT_OK,
) -> int:
    """One call to the manager's API, its answer shown (or printed as JSON with
    ``--format json``); the exit code: ``exit_of(answer)``, 1 when the manager cannot be
    reached or fails (5xx), 2 when it refuses (4xx, its message printed)."""
    try:
        async with client(args) as http:
            response = await http.request(method, path, json=body)
    except httpx.TransportError as exc:
        print(
            f"watchkeeper: cannot reach the manager at {args.url}: {exc or type(exc).__name__}",
            file=sys.stderr,
        )
        return EXIT_INVALID
    if not response.is_success:
        print(f"watchkeeper: {detail(response)} (HTTP {response.status_code})", file=sys.stderr)
        return EXIT_USAGE if response.is_client_error else EXIT_INVALID
    answer = response.json()
    if args.format == "json":
        emit_json(answer)
    else:
        show(answer)
    return exit_of(answer)
