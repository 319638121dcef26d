"""SSH keys of the job transport: the manager's host key and the form keys are stored in.

The manager's ed25519 host key is created on first start in the data directory (mode 0600,
created exclusively so two starting managers cannot write half a key each) and loaded
afterwards. Workers pin it by its OpenSSH fingerprint (``SHA256:...``), which
``watchkeeper keys`` prints. ``keys export`` and ``keys import`` copy it to the other
managers of a high-availability cluster, so one pin serves them all: a worker failing over
to a standby then meets the key it already trusts. Worker keys are stored and compared in
one canonical form, ``"<algorithm> <base64>"`` without a comment, so the same key always
matches itself.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import asyncssh

from watchkeeper.errors import UsageError
from watchkeeper.private import private_dir
from watchkeeper.transport.errors import TransportError

HOST_KEY_FILE = "ssh_host_ed25519_key"
HOST_KEY_ALGORITHM = "ssh-ed25519"


def host_key_path(data_dir: Path) -> Path:
    return data_dir / HOST_KEY_FILE


def load_or_create_host_key(data_dir: Path) -> asyncssh.SSHKey:
    """The manager's host key from ``data_dir``, generating it (mode 0600) if missing."""
    path = host_key_path(data_dir)
    try:
        return asyncssh.read_private_key(path)
    except FileNotFoundError:
        pass
    except (OSError, asyncssh.KeyImportError) as exc:
        raise TransportError(f"cannot read the host key {path}: {exc}") from exc
    key = asyncssh.generate_private_key(HOST_KEY_ALGORITHM, comment="watchkeeper manager")
    try:
        private_dir(data_dir)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race: use its key
        return asyncssh.read_private_key(path)
    except OSError as exc:
        raise TransportError(f"cannot create the host key {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "wb") as out:
        out.write(key.export_private_key())
    return key


def read_host_key(data_dir: Path) -> asyncssh.SSHKey:
    """The host key of ``data_dir``, which must exist: `UsageError` saying how to make it."""
    path = host_key_path(data_dir)
    try:
        return asyncssh.read_private_key(path)
    except FileNotFoundError:
        raise UsageError(
            f"no host key {path}: start the manager once, or run `watchkeeper keys "
            f"--data-dir {data_dir}`, to create it"
        ) from None
    except (OSError, asyncssh.KeyImportError) as exc:
        raise UsageError(f"cannot read the host key {path}: {exc}") from exc


def parse_host_key(data: bytes, *, source: str) -> asyncssh.SSHKey:
    """A job server host key from private key text; `UsageError` naming ``source`` when it
    is something else (a public key, an encrypted one, another algorithm)."""
    if b"PRIVATE KEY" not in data:
        what = "a public key" if b"ssh-" in data[:64] else "no private key"
        raise UsageError(f"{source} is {what}; give the file `watchkeeper keys export` wrote")
    try:
        key = asyncssh.import_private_key(data)
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise UsageError(f"{source} is not a usable private key: {exc}") from exc
    algorithm = key.get_algorithm()
    if algorithm != HOST_KEY_ALGORITHM:
        raise UsageError(
            f"{source} holds an {algorithm} key; a job server's host key must be "
            f"{HOST_KEY_ALGORITHM} (workers accept no other)"
        )
    return key


def read_host_key_file(path: Path, *, argument: str) -> asyncssh.SSHKey:
    """A host key from ``path`` (`parse_host_key`); errors name ``argument`` and the path."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{argument}: cannot read {path}: {exc.strerror}") from exc
    return parse_host_key(data, source=f"{argument}: {path}")


def write_private(path: Path, data: bytes, *, replace: bool) -> None:
    """Write ``data`` to ``path``, mode 0600; an existing file is replaced only if
    ``replace``, atomically (a new file renamed over it), else `FileExistsError`."""
    if not replace:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        return
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:  # mkstemp makes it 0600
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def install_host_key(data_dir: Path, key: asyncssh.SSHKey, *, force: bool) -> bool:
    """Make ``key`` the host key of ``data_dir``; False when it already was.

    A different key there is replaced only with ``force``: workers pinning it would
    refuse this manager from then on. `UsageError` names its fingerprint otherwise.
    """
    path = host_key_path(data_dir)
    try:
        existing: asyncssh.SSHKey | None = asyncssh.read_private_key(path)
    except FileNotFoundError:
        existing = None
    except (OSError, asyncssh.KeyImportError) as exc:
        if not force:
            raise UsageError(
                f"cannot read the host key {path} already there ({exc}); --force replaces it"
            ) from exc
        existing = None
    if existing is not None and fingerprint(existing) == fingerprint(key):
        return False
    if existing is not None and not force:
        raise UsageError(
            f"{path} already holds host key {fingerprint(existing)}, which workers may pin; "
            f"--force replaces it with {fingerprint(key)}"
        )
    private_dir(data_dir)
    try:
        write_private(path, key.export_private_key(), replace=path.exists())
    except OSError as exc:
        raise UsageError(f"cannot write the host key {path}: {exc.strerror}") from exc
    return True


def fingerprint(key: asyncssh.SSHKey) -> str:
    """The OpenSSH SHA256 fingerprint, ``SHA256:<base64>``, as ``ssh-keygen -l`` prints it."""
    return key.get_fingerprint("sha256")


def canonical_public_key(key: asyncssh.SSHKey) -> str:
    """``"<algorithm> <base64>"``: the one-line OpenSSH form without a comment."""
    algorithm, blob = key.export_public_key("openssh").decode().split()[:2]
    return f"{algorithm} {blob}"


def parse_public_key(text: str | bytes, *, source: str = "public key") -> asyncssh.SSHKey:
    """A worker's public key from OpenSSH text; `UsageError` naming ``source`` otherwise.

    A private key is refused too: enrolment must never ask anyone to copy one around.
    """
    data = text.encode() if isinstance(text, str) else text
    if b"PRIVATE KEY" in data:
        raise UsageError(f"{source} is a private key; give the .pub file")
    try:
        return asyncssh.import_public_key(data)
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise UsageError(f"{source} is not an OpenSSH public key: {exc}") from exc


def read_public_key_file(path: Path) -> asyncssh.SSHKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read the public key {path}: {exc.strerror}") from exc
    return parse_public_key(data, source=str(path))


def create_worker_key(
    path: Path, *, comment: str = "watchkeeper worker", public: bool = True
) -> bool:
    """Make an ed25519 key at ``path`` (0600), and ``path.pub`` if ``public``, unless one
    is there.

    Created exclusively, so two processes starting at once keep one key. True when this
    call made it. The directory is made private (0700) if this call creates it.
    """
    if path.exists():
        if public and not path.with_name(path.name + ".pub").exists():
            key = asyncssh.read_private_key(path)
            path.with_name(path.name + ".pub").write_bytes(key.export_public_key("openssh"))
        return False
    key = asyncssh.generate_private_key("ssh-ed25519", comment=comment)
    if not path.parent.exists():
        private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use that one
        return False
    except OSError as exc:
        raise UsageError(f"cannot create the key {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "wb") as out:
        out.write(key.export_private_key())
    if public:
        path.with_name(path.name + ".pub").write_bytes(key.export_public_key("openssh"))
    return True
