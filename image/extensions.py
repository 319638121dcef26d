"""Import every compiled extension module of a site-packages; print those that load.

The image build strips the extension modules' symbols (about 20 MB). It runs this before
and after and fails when a module that loaded before does not load after: a strip that
breaks a library is a failed build, not a crash in production. Run by the image's python,
not ours (it is in the build context, not the package).
"""

import importlib
import importlib.machinery
import sys
from pathlib import Path

site = Path(sys.argv[1])
suffixes = sorted(importlib.machinery.EXTENSION_SUFFIXES, key=len, reverse=True)
loaded = []
for path in sorted(site.rglob("*.so")):
    relative = path.relative_to(site)
    if ".libs" in relative.parts[0] or relative.parts[0].endswith(".dist-info"):
        continue  # bundled shared libraries, loaded by the modules that need them
    name = str(relative)
    for suffix in suffixes:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    else:
        continue
    module = name.replace("/", ".")
    try:
        importlib.import_module(module)
    except Exception:  # noqa: BLE001 - optional parts may need what is not installed
        continue
    loaded.append(module)
print("\n".join(loaded))
