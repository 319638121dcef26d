"""The bundled demo document, pointed at the port this manager's HTTP API really uses.

The demo watches the manager's own API (service ``watchkeeper-api``, port 8470). When ``up``
runs it on another port (``--http 127.0.0.1:9000``, or port 0 in tests), that check would
fail for a reason that has nothing to do with the API, so ``up`` writes a copy with the port
corrected to ``<data-dir>/demo.json`` and polls that instead. The copy is rewritten at every
start; to change the demo, copy it elsewhere and pass it to ``up``.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

#: The service of the demo that checks the manager's API, and the port the file names.
API_SERVICE = "watchkeeper-api"
DEMO_PORT = 8470
RENDERED_NAME = "demo.json"


def bundled_example() -> Path:
    """The demo document shipped inside the package."""
    return Path(str(resources.files("watchkeeper") / "examples" / "demo.json"))


def demo_for_port(http_port: int, data_dir: Path) -> Path:
    """The demo to poll for an API on ``http_port``: the bundled file, or a corrected copy."""
    bundled = bundled_example()
    if http_port == DEMO_PORT:
        return bundled
    document: dict[str, Any] = json.loads(bundled.read_text(encoding="utf-8"))
    for service in document.get("services", []):
        if service.get("name") == API_SERVICE:
            service["check"]["port"] = http_port
    rendered = data_dir / RENDERED_NAME
    rendered.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return rendered
