"""``watchkeeper health``: is the role running beside me healthy? For a HEALTHCHECK.

Reads the status file the role wrote (`watchkeeper.liveness`): a manager is asked
``GET /api/v1/health`` with the manager token from the data directory (every API call
needs a token, this one too); a worker is judged by its last heartbeat. Exit 0 healthy,
1 not healthy, 2 no status to judge; one line on standard output says why.
"""

from __future__ import annotations

import argparse
import ssl
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

from watchkeeper import liveness
from watchkeeper.commands.exits import EXIT_INVALID, EXIT_OK, EXIT_USAGE
from watchkeeper.private import TOKEN_FILE

#: Addresses a manager listens on that are not an address to dial.
_ANY = {"0.0.0.0": "127.0.0.1", "::": "::1"}


def local_url(url: str) -> str:
    """``url`` with a wildcard listen address replaced by loopback (dialled from beside it)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if host not in _ANY:
        return url
    local = _ANY[host]
    shown = f"[{local}]" if ":" in local else local
    return urlunsplit(parts._replace(netloc=f"{shown}:{parts.port}"))


async def _probe_manager(status: liveness.Status, args: argparse.Namespace) -> liveness.Verdict:
    url = local_url(status.url or "")
    token_path = Path(args.data_dir) / TOKEN_FILE
    try:
        token = token_path.read_text().strip()
    except OSError as exc:
        return liveness.Verdict(False, f"cannot read the manager token {token_path}: {exc}")
    verify: ssl.SSLContext | bool = True
    if url.startswith("https://"):
        # Beside the manager, its own certificate is what it presents: a self-signed one
        # is not a failure of health. The token still goes only to this loopback address.
        verify = False
    try:
        async with httpx.AsyncClient(verify=verify, timeout=args.request_timeout) as client:
            response = await client.get(
                f"{url}/api/v1/health", headers={"Authorization": f"Bearer {token}"}
            )
    except httpx.HTTPError as exc:
        return liveness.Verdict(False, f"manager at {url} does not answer: {exc}")
    if response.status_code != 200:
        return liveness.Verdict(
            False, f"manager at {url} answered {response.status_code}: {response.text[:200]}"
        )
    return liveness.Verdict(True, f"manager at {url} healthy")


async def health(args: argparse.Namespace) -> int:
    path = Path(args.status_file or Path(args.data_dir) / liveness.STATUS_FILE)
    try:
        status = liveness.read(path)
    except liveness.StatusUnreadable as exc:
        print(f"unknown: {exc}")
        return EXIT_USAGE
    if status.role == "manager":
        verdict = await _probe_manager(status, args)
    else:
        verdict = liveness.judge_worker(status, time.time())
    print(("healthy: " if verdict.healthy else "unhealthy: ") + verdict.message)
    return EXIT_OK if verdict.healthy else EXIT_INVALID
