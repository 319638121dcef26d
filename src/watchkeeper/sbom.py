"""The software bill of materials of an installation, as SPDX 2.3 JSON.

``python -m watchkeeper.sbom`` prints every Debian package (``dpkg-query``) and every
Python distribution of this interpreter's environment, with package URLs. The image
build writes it to ``/usr/share/watchkeeper/sbom.json`` (docs/image.md), so a scanner
reads what the image holds without running it. Its creation time is
``SOURCE_DATE_EPOCH``: the same content gives the same file.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

from watchkeeper import __version__


@dataclass(frozen=True, order=True)
class Component:
    ecosystem: str  # "deb" or "pypi"
    name: str
    version: str

    @property
    def purl(self) -> str:
        if self.ecosystem == "deb":
            return f"pkg:deb/debian/{self.name}@{self.version}?arch={_deb_arch()}"
        return f"pkg:pypi/{self.name.lower().replace('_', '-')}@{self.version}"


def _deb_arch() -> str:
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


def debian_packages() -> list[Component]:
    """Installed Debian packages, or none where there is no dpkg."""
    if shutil.which("dpkg-query") is None:
        return []
    out = subprocess.run(
        ["dpkg-query", "-W", "-f", "${db:Status-Abbrev}\t${Package}\t${Version}\n"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = []
    for line in out.splitlines():
        status, name, version = line.split("\t")
        if status.startswith("ii"):
            found.append(Component("deb", name, version))
    return sorted(found)


def python_distributions() -> list[Component]:
    seen = {(d.metadata["Name"], d.version) for d in metadata.distributions() if d.metadata["Name"]}
    return sorted(Component("pypi", name, version) for name, version in seen)


def _purl_ref(component: Component) -> dict[str, str]:
    return {
        "referenceCategory": "PACKAGE-MANAGER",
        "referenceType": "purl",
        "referenceLocator": component.purl,
    }


def document(components: list[Component], created: datetime) -> dict[str, Any]:
    """The SPDX document describing ``components``."""
    packages = [
        {
            "SPDXID": f"SPDXRef-{c.ecosystem}-{i}",
            "name": c.name,
            "versionInfo": c.version,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": False,
            "externalRefs": [_purl_ref(c)],
        }
        for i, c in enumerate(components)
    ]
    return {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"watchkeeper-{__version__}",
        "documentNamespace": f"https://watchkeeper.invalid/spdx/watchkeeper-{__version__}",
        "creationInfo": {
            "created": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "creators": [f"Tool: watchkeeper.sbom-{__version__}"],
        },
        "packages": packages,
    }


def main() -> int:
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH") or 0)
    components = debian_packages() + python_distributions()
    json.dump(document(components, datetime.fromtimestamp(epoch, UTC)), sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
