"""The bundled demo document, pointed at the port this manager's HTTP API really uses.

The demo watches the manager's own API (service ``watchkeeper-api``, port 8470). When ``up``
runs it on another port (``--http 127.0.0.1:9000``, or port 0 in tests), that check would
fail for a reason that has nothing to do with the API. So `DemoSource` watches the bundled
file itself (``examples/demo.json``: edits to it are picked up as with any document) and,
in each candidate it reads, points that one check at the port the API listens on. Nothing
is written anywhere: the file stays the operator's, and ``up`` says which file it watches.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from watchkeeper.sources import Candidate, Source

#: The service of the demo that checks the manager's API, and the port the file names.
API_SERVICE = "watchkeeper-api"
DEMO_PORT = 8470


def bundled_example() -> Path:
    """The demo document shipped inside the package."""
    return Path(str(resources.files("watchkeeper") / "examples" / "demo.json")).resolve()


def for_port(body: bytes, http_port: int) -> bytes:
    """The demo's bytes with its API check on ``http_port`` (the bytes as they are when
    they are not the demo's shape: the intake reports what is wrong with them)."""
    try:
        document: Any = json.loads(body)
        services = document.get("services", []) if isinstance(document, dict) else []
    except ValueError:
        return body
    changed = False
    for service in services if isinstance(services, list) else []:
        check = service.get("check") if isinstance(service, dict) else None
        if service.get("name") == API_SERVICE and isinstance(check, dict):
            changed = check.get("port") != http_port
            check["port"] = http_port
    return json.dumps(document, indent=2).encode() + b"\n" if changed else body


class DemoSource:
    """A `Source` over the demo file whose candidates check the API on ``http_port``."""

    def __init__(self, inner: Source, http_port: int) -> None:
        self._inner = inner
        self.http_port = http_port

    @property
    def name(self) -> str:
        return self._inner.name

    async def fetch(self) -> Candidate | None:
        found = await self._inner.fetch()
        if found is None or self.http_port == DEMO_PORT:
            return found
        return Candidate(
            body=for_port(found.body, self.http_port),
            source=found.source,
            fetched_at=found.fetched_at,
            etag=found.etag,
            last_modified=found.last_modified,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()
