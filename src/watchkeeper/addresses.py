"""Addresses on the command line: ``host:port`` for the web, the job server and a worker.

Its own small module so a worker, which dials and never listens, parses ``--manager``
without importing the manager.
"""

from __future__ import annotations

import ipaddress

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


def parse_manager(value: str, flag: str = "--manager") -> tuple[str, int]:
    """A manager's job server, ``host[:port]`` or ``[v6][:port]``; the port defaults to 4730.

    A bare IPv6 address (more than one colon, no brackets) is a host without a port.
    """
    text = value.strip()
    if text.count(":") > 1 and not text.startswith("["):
        host, port = text, str(JOBS_PORT) if _is_ipv6(text) else ""
    elif ":" in text.rpartition("]")[2]:
        host, _, port = text.rpartition(":")
    else:
        host, port = text, str(JOBS_PORT)
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"{flag}: expected HOST[:PORT] such as m1:{JOBS_PORT}, got {value!r}")
    return host, int(port)


def parse_managers(values: list[str], flag: str = "--manager") -> list[tuple[str, int]]:
    """Every manager of repeated or comma-separated ``values``, in order, each once."""
    found = [
        parse_manager(item, flag)
        for value in values
        for item in (part.strip() for part in value.split(","))
        if item
    ]
    if not found:
        raise UsageError(f"{flag}: expected HOST[:PORT][,HOST[:PORT]...], got nothing")
    return list(dict.fromkeys(found))


def join_host_port(host: str, port: int) -> str:
    """``host:port``, with an IPv6 address in brackets: how a manager is named in logs."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _is_ipv6(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).version == 6
    except ValueError:
        return False
