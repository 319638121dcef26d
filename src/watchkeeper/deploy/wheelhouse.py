"""The agent's wheels: the manager's own version, from this installation, never the internet.

A deploy worker installs the agent from a *wheelhouse*: a directory with the wheel of
``watchkeeper`` at this installation's version, the wheels of its dependencies and of
pip, for one Python version. ``scripts/bootstrap`` builds it into the venv
(``.venv/share/watchkeeper/wheelhouse``), ``scripts/build-image`` beside the image (a
deploy worker in a container mounts it), and ``WATCHKEEPER_WHEELHOUSE`` names another.
It is uploaded to a host as one tar.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

from watchkeeper.errors import WatchkeeperError

ENV = "WATCHKEEPER_WHEELHOUSE"


class WheelhouseError(WatchkeeperError):
    """No usable wheelhouse: the message says where it looked and how to make one."""


def default_path() -> Path:
    return Path(os.environ.get(ENV) or Path(sys.prefix) / "share" / "watchkeeper" / "wheelhouse")


@dataclass(frozen=True, slots=True)
class Wheelhouse:
    path: Path
    version: str
    #: The Python version its compiled wheels are for, "3.11".
    python: str
    wheels: tuple[Path, ...]

    def tarball(self, cache: Path) -> Path:
        """One tar of the wheels (already compressed), made once per content, in ``cache``."""
        digest = hashlib.sha256()
        for wheel in self.wheels:
            digest.update(
                f"{wheel.name}:{wheel.stat().st_size}:{wheel.stat().st_mtime_ns}".encode()
            )
        target = cache / f"wheelhouse-{self.version}-{digest.hexdigest()[:16]}.tar"
        if not target.exists():
            cache.mkdir(parents=True, exist_ok=True, mode=0o700)
            partial = target.with_suffix(f".{os.getpid()}.part")
            with tarfile.open(partial, "w") as tar:
                for wheel in self.wheels:
                    tar.add(wheel, arcname=wheel.name)
            partial.replace(target)
        return target


def find(version: str, path: Path | None = None) -> Wheelhouse:
    """The wheelhouse holding ``watchkeeper`` ``version`` and pip; `WheelhouseError` if none."""
    where = path or default_path()
    wheels = tuple(sorted(where.glob("*.whl"))) if where.is_dir() else ()
    hint = (
        f"no wheelhouse of watchkeeper {version} in {where}: scripts/bootstrap builds one "
        f"(pip wheel -w DIR watchkeeper=={version} pip), or set {ENV}"
    )
    names = [w.name.lower() for w in wheels]
    if not any(n.startswith(f"watchkeeper-{version}-") for n in names):
        raise WheelhouseError(hint)
    if not any(n.startswith("pip-") for n in names):
        raise WheelhouseError(f"{hint} (pip's wheel is missing)")
    return Wheelhouse(where, version, _python_of(wheels), wheels)


def _python_of(wheels: tuple[Path, ...]) -> str:
    """The Python version ("3.11") of the version-specific wheels (cp311-cp311); "" when none
    is (pure Python and stable-ABI wheels, cp310-abi3, install on any later Python)."""
    for wheel in wheels:
        parts = wheel.name.removesuffix(".whl").split("-")
        if len(parts) >= 5 and parts[-3] == parts[-2] and parts[-3].startswith("cp3"):
            return f"3.{parts[-3][3:]}"
    return ""
