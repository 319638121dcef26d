"""Addresses on the command line: ``host:port`` for the web, the job server and a worker.

Its own small module so a worker, which dials and never listens, parses ``--manager``
without importing the manager.
"""

from __future__ import annotations

from watchkeeper.errors import UsageError

#: The job server's port (SSH), the seed's 4730/tcp.
JOBS_PORT = 4730
#: The web interface's and API's port.
HTTP_PORT = 8470


def parse_listen(value: str, flag: str = "--http", example: int = HTTP_PORT) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` (port 0: any free port); `UsageError` names the flag."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise UsageError(
            f"{flag}: expected ADDRESS:PORT such as 127.0.0.1:{example}, got {value!r}"
        )
    return host, int(port)
