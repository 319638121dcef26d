"""The ssh executor's pure parts: known_hosts lines and lookups, the locked append, the key
cache, and failures that need no server. Real sshd runs are in
tests/integration/test_ssh_executor.py.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from watchkeeper.results import CheckState
from watchkeeper.worker.executors import SshExecutor
from watchkeeper.worker.executors.ssh import (
    KNOWN_HOSTS_ENV,
    HostKeyStatus,
    KnownHostsFile,
    default_known_hosts_path,
    host_key_status,
    known_hosts_line,
)


@pytest.fixture(scope="module")
def host_key() -> asyncssh.SSHKey:
    return asyncssh.generate_private_key("ssh-ed25519").convert_to_public()


@pytest.fixture(scope="module")
def other_key() -> asyncssh.SSHKey:
    return asyncssh.generate_private_key("ssh-ed25519").convert_to_public()


def public(key: asyncssh.SSHKey) -> str:
    return key.export_public_key("openssh").decode().split()[1]


def test_known_hosts_line_is_openssh_format(host_key: asyncssh.SSHKey) -> None:
    blob = public(host_key)
    assert known_hosts_line("10.0.0.2", 22, host_key) == f"10.0.0.2 ssh-ed25519 {blob}\n"
    assert known_hosts_line("web1", 2222, host_key) == f"[web1]:2222 ssh-ed25519 {blob}\n"
    assert known_hosts_line("2001:db8::1", 22, host_key) == f"2001:db8::1 ssh-ed25519 {blob}\n"
    assert known_hosts_line("2001:db8::1", 2222, host_key).startswith("[2001:db8::1]:2222 ")


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs ssh-keygen (openssh-client)")
def test_openssh_finds_the_lines(tmp_path: Path, host_key: asyncssh.SSHKey) -> None:
    path = tmp_path / "known_hosts"
    path.write_text(known_hosts_line("web1", 22, host_key) + known_hosts_line("db", 2222, host_key))
    for name in ("web1", "[db]:2222"):
        found = subprocess.run(
            ["ssh-keygen", "-F", name, "-f", str(path)], capture_output=True, text=True
        )
        assert found.returncode == 0, found.stderr
        assert public(host_key) in found.stdout


def test_host_key_status(host_key: asyncssh.SSHKey, other_key: asyncssh.SSHKey) -> None:
    known = asyncssh.import_known_hosts(
        known_hosts_line("web1", 22, host_key) + known_hosts_line("db", 2222, other_key)
    )
    assert host_key_status(known, "web1", "10.0.0.1", 22, host_key) is HostKeyStatus.KNOWN
    assert host_key_status(known, "web1", "10.0.0.1", 22, other_key) is HostKeyStatus.CHANGED
    assert host_key_status(known, "db", "10.0.0.2", 2222, other_key) is HostKeyStatus.KNOWN
    assert host_key_status(known, "db", "10.0.0.2", 22, other_key) is HostKeyStatus.UNKNOWN
    assert host_key_status(known, "new", "10.0.0.3", 22, host_key) is HostKeyStatus.UNKNOWN
    # The address matches too, as asyncssh (and OpenSSH's CheckHostIP) look it up.
    by_ip = asyncssh.import_known_hosts(known_hosts_line("10.0.0.9", 22, host_key))
    assert host_key_status(by_ip, "web9", "10.0.0.9", 22, host_key) is HostKeyStatus.KNOWN


def test_hashed_lines_are_understood(tmp_path: Path, host_key: asyncssh.SSHKey) -> None:
    if shutil.which("ssh-keygen") is None:
        pytest.skip("needs ssh-keygen (openssh-client)")
    path = tmp_path / "known_hosts"
    path.write_text(known_hosts_line("web1", 22, host_key))
    subprocess.run(["ssh-keygen", "-H", "-f", str(path)], capture_output=True, check=True)
    assert path.read_text().startswith("|1|")
    known = KnownHostsFile(path).load()
    assert host_key_status(known, "web1", "10.0.0.1", 22, host_key) is HostKeyStatus.KNOWN


def test_accept_new_creates_the_file_privately(tmp_path: Path, host_key: asyncssh.SSHKey) -> None:
    file = KnownHostsFile(tmp_path / "ssh" / "known_hosts")
    assert file.accept_new("web1", "10.0.0.1", 2222, host_key) is HostKeyStatus.UNKNOWN
    assert file.path.read_text() == known_hosts_line("web1", 2222, host_key)
    assert file.path.stat().st_mode & 0o777 == 0o600
    assert file.path.parent.stat().st_mode & 0o777 == 0o700
    assert file.accept_new("web1", "10.0.0.1", 2222, host_key) is HostKeyStatus.KNOWN
    assert file.path.read_text() == known_hosts_line("web1", 2222, host_key)


def test_accept_new_never_replaces_a_key(
    tmp_path: Path, host_key: asyncssh.SSHKey, other_key: asyncssh.SSHKey
) -> None:
    file = KnownHostsFile(tmp_path / "known_hosts")
    file.path.write_text("# kept\n" + known_hosts_line("web1", 22, host_key))
    before = file.path.read_text()
    assert file.accept_new("web1", "10.0.0.1", 22, other_key) is HostKeyStatus.CHANGED
    assert file.path.read_text() == before


def test_accept_new_ends_an_unterminated_last_line(
    tmp_path: Path, host_key: asyncssh.SSHKey, other_key: asyncssh.SSHKey
) -> None:
    file = KnownHostsFile(tmp_path / "known_hosts")
    first = known_hosts_line("web1", 22, host_key)
    file.path.write_text(first.rstrip("\n"))
    file.accept_new("web2", "10.0.0.2", 22, other_key)
    assert file.path.read_text() == first + known_hosts_line("web2", 22, other_key)


def test_racing_accept_new_writes_one_line(tmp_path: Path, host_key: asyncssh.SSHKey) -> None:
    """Threads stand in for checks in other processes: each opens and locks the file."""
    path = tmp_path / "known_hosts"
    start = threading.Barrier(8)
    results: list[HostKeyStatus] = []

    def contact() -> None:
        start.wait()
        results.append(KnownHostsFile(path).accept_new("web1", "10.0.0.1", 22, host_key))

    threads = [threading.Thread(target=contact) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(status.value for status in results) == ["known"] * 7 + ["unknown"]
    assert path.read_text() == known_hosts_line("web1", 22, host_key)


def test_load_parses_once_per_change(tmp_path: Path, host_key: asyncssh.SSHKey) -> None:
    file = KnownHostsFile(tmp_path / "known_hosts")
    empty = file.load()
    assert host_key_status(empty, "web1", "10.0.0.1", 22, host_key) is HostKeyStatus.UNKNOWN
    file.path.write_text(known_hosts_line("web1", 22, host_key))
    first = file.load()
    assert file.load() is first
    assert host_key_status(first, "web1", "10.0.0.1", 22, host_key) is HostKeyStatus.KNOWN
    file.accept_new("web2", "10.0.0.2", 22, host_key)
    assert file.load() is not first


def test_default_known_hosts_path(tmp_path: Path) -> None:
    assert default_known_hosts_path({}) == Path.home() / ".ssh" / "known_hosts"
    configured = tmp_path / "hosts"
    assert default_known_hosts_path({KNOWN_HOSTS_ENV: str(configured)}) == configured
    executor = SshExecutor(environ={KNOWN_HOSTS_ENV: str(configured)})
    assert executor.known_hosts.path == configured


# --- the executor without a server --------------------------------------------------------


def check(**fields: Any) -> dict[str, Any]:
    return {"kind": "ssh", "command": ["true"], "key": "env:WK_KEY", **fields}


async def test_keys_are_parsed_once_per_content() -> None:
    first = asyncssh.generate_private_key("ssh-ed25519").export_private_key().decode()
    second = asyncssh.generate_private_key("ssh-ed25519").export_private_key().decode()
    environ = {"WK_KEY": first}
    executor = SshExecutor(environ=environ)
    key = executor._load_key("env:WK_KEY")
    assert executor._load_key("env:WK_KEY") is key
    environ["WK_KEY"] = second  # rotated
    rotated = executor._load_key("env:WK_KEY")
    assert rotated.fingerprint != key.fingerprint
    environ["WK_KEY"] = first
    assert executor._load_key("env:WK_KEY") is key


async def test_an_unset_key_reference() -> None:
    out = await SshExecutor(environ={}).run(check(), address="192.0.2.1", timeout=5)
    assert out.state is CheckState.UNKNOWN
    assert out.output == (
        "SSH UNKNOWN - cannot read the key: environment variable WK_KEY is not set "
        "(secret env:WK_KEY)"
    )


async def test_a_key_that_is_not_a_private_key() -> None:
    public_key = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    executor = SshExecutor(environ={"WK_KEY": public_key})
    out = await executor.run(check(), address="192.0.2.1", timeout=5)
    assert out.state is CheckState.UNKNOWN
    assert out.output.startswith("SSH UNKNOWN - the key env:WK_KEY is not a usable private key")
    assert "AAAA" not in out.output  # never echo key material


async def test_an_encrypted_key_is_refused() -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    text = key.export_private_key("pkcs8-pem", passphrase="secret").decode()
    out = await SshExecutor(environ={"WK_KEY": text}).run(check(), address="192.0.2.1", timeout=5)
    assert out.state is CheckState.UNKNOWN
    assert "is not a usable private key" in out.output


async def test_an_invalid_spec() -> None:
    out = await SshExecutor(environ={}).run(
        {"kind": "ssh", "command": ["true"]}, address="192.0.2.1", timeout=5
    )
    assert out.state is CheckState.UNKNOWN
    assert out.output == "SSH UNKNOWN - invalid check: key: Field required"


async def test_an_unresolvable_name(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    async def no_such_host(*args: Any, **kwargs: Any) -> None:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(asyncssh, "connect", no_such_host)
    key = asyncssh.generate_private_key("ssh-ed25519").export_private_key().decode()
    executor = SshExecutor(known_hosts_path=tmp_path / "known_hosts", environ={"WK_KEY": key})
    out = await executor.run(check(), address="nowhere.invalid", timeout=5)
    assert out.state is CheckState.UNKNOWN
    assert out.output == "SSH UNKNOWN - cannot resolve nowhere.invalid: Name or service not known"
    assert executor.connections == 0
    await executor.aclose()


async def test_a_malformed_known_hosts_file(tmp_path: Path) -> None:
    (tmp_path / "known_hosts").write_text("just-one-field\n")
    key = asyncssh.generate_private_key("ssh-ed25519").export_private_key().decode()
    executor = SshExecutor(known_hosts_path=tmp_path / "known_hosts", environ={"WK_KEY": key})
    out = await executor.run(check(), address="192.0.2.1", timeout=5)
    assert out.state is CheckState.UNKNOWN
    assert out.output.startswith(f"SSH UNKNOWN - cannot use known_hosts {tmp_path}/known_hosts: ")
    await executor.aclose()
