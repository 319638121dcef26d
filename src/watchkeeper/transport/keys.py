"""SSH keys of the job transport: the manager's host key and the form keys are stored in.

The manager's ed25519 host key is created on first start in the data directory (mode 0600,
created exclusively so two starting managers cannot write half a key each) and loaded
afterwards. Workers pin it by its OpenSSH fingerprint (``SHA256:...``), which
``watchkeeper keys`` prints. Worker keys are stored and compared in one canonical form,
``"<algorithm> <base64>"`` without a comment, so the same key always matches itself.
"""

from __future__ import annotations

import os
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
