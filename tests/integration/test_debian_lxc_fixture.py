"""The Debian LXC hosts fixture itself: clones on a bridge, each with its own sshd, host
key and filesystem, reachable by strict SSH, and nothing left behind.

The lab (`tests.fixtures.debian_lxc`) is made once for the module, with two hosts the
read-only tests share; a test that changes a host makes one of its own and removes it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest

from tests.fixtures.debian_lxc import BUILD_TIMEOUT, DebianHost, DebianLab, debian_lab

pytestmark = pytest.mark.timeout(BUILD_TIMEOUT)  # the first run builds the template rootfs


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DebianLab]:
    with debian_lab(tmp_path_factory.mktemp("debian")) as made:
        yield made


@pytest.fixture(scope="module")
def pair(lab: DebianLab) -> tuple[DebianHost, DebianHost]:
    first, second = lab.hosts(["deb-a", "deb-b"])
    return first, second


def known_hosts(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "known_hosts"
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def ssh(host: DebianHost, known: Path, *command: str) -> subprocess.CompletedProcess[str]:
    argv = host.ssh_argv(known, *command)
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


def test_two_hosts_have_their_own_addresses_and_host_keys(
    lab: DebianLab, pair: tuple[DebianHost, DebianHost]
) -> None:
    first, second = pair
    assert first.address != second.address
    assert {first.address, second.address} <= {str(a) for a in lab.network.hosts()}
    assert first.host_key != second.host_key
    for host in pair:
        assert host.host_key.startswith("ssh-ed25519 AAAA") and len(host.host_key.split()) == 2
        assert lab.known_hosts_line(host) == f"{host.address} {host.host_key}"
        assert host.client_key == lab.client_key
        assert lab.state(host.name) == "RUNNING"
    assert oct(lab.client_key.stat().st_mode & 0o777) == "0o600"
    assert not list((lab.rootfs / "etc/ssh").glob("ssh_host_*"))  # the cache has no keys


def test_strict_ssh_runs_python_311_as_root(
    pair: tuple[DebianHost, DebianHost], lab: DebianLab, tmp_path: Path
) -> None:
    host = pair[0]
    done = ssh(host, known_hosts(tmp_path, lab.known_hosts_line(host)), "python3 --version; id -u")

    assert done.returncode == 0, done.stderr
    version, uid = done.stdout.split("\n")[:2]
    assert version.startswith("Python 3.11.") and uid == "0"
    assert "Permanently added" not in done.stderr  # it was known, not learnt
    assert lab.run(host.name, "cat", "/proc/1/comm").strip() == "sshd"  # no init


async def test_asyncssh_with_the_host_key(pair: tuple[DebianHost, DebianHost]) -> None:
    host = pair[1]
    known = asyncssh.import_known_hosts(host.known_hosts_line)
    async with asyncssh.connect(
        host.address,
        host.port,
        username="root",
        client_keys=[str(host.client_key)],
        known_hosts=known,
    ) as connection:
        result = await connection.run("uname -n", check=True)
    assert result.stdout == f"{host.name}\n"


def test_an_unknown_client_key_is_refused(
    pair: tuple[DebianHost, DebianHost], lab: DebianLab, tmp_path: Path
) -> None:
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    host = pair[0]
    argv = host.ssh_argv(known_hosts(tmp_path, lab.known_hosts_line(host)), "true")
    argv[argv.index(str(lab.client_key))] = str(other)

    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)

    assert done.returncode == 255 and "Permission denied" in done.stderr


def test_a_file_written_in_one_host_is_not_in_the_other(
    lab: DebianLab, pair: tuple[DebianHost, DebianHost]
) -> None:
    first, second = pair
    lab.run(first.name, "sh", "-c", "echo drifted > /etc/watchkeeper-drift")

    assert lab.run(first.name, "cat", "/etc/watchkeeper-drift") == "drifted\n"
    assert "watchkeeper-drift" not in lab.run(second.name, "ls", "/etc").split()
    assert not (lab.rootfs / "etc/watchkeeper-drift").exists()  # the cache is untouched
    assert (lab.upper(first.name) / "etc/watchkeeper-drift").exists()


def test_a_regenerated_host_key_is_refused_by_the_old_known_hosts_line(
    lab: DebianLab, tmp_path: Path
) -> None:
    host = lab.host("deb-rekey", 5)
    try:
        old = known_hosts(tmp_path, lab.known_hosts_line(host))
        assert ssh(host, old, "true").returncode == 0

        new_key = lab.regenerate_host_key(host.name)

        assert new_key != host.host_key and new_key.startswith("ssh-ed25519 ")
        assert lab.get(host.name).host_key == new_key
        refused = ssh(host, old, "true")
        assert refused.returncode == 255
        assert (
            "REMOTE HOST IDENTIFICATION HAS CHANGED" in refused.stderr
            or "Host key verification failed" in refused.stderr
        ), refused.stderr
        renewed = known_hosts(tmp_path, lab.known_hosts_line(lab.get(host.name)))
        assert ssh(host, renewed, "true").returncode == 0
    finally:
        lab.remove(host.name)
    assert host.name not in lab.containers()


def test_a_restarted_host_answers_at_its_address_with_its_key(
    lab: DebianLab, tmp_path: Path
) -> None:
    host = lab.host("deb-restart", 6)
    try:
        known = known_hosts(tmp_path, lab.known_hosts_line(host))
        lab.run(host.name, "touch", "/root/kept")

        lab.stop(host.name)
        assert lab.state(host.name) == "STOPPED"
        lab.start(host.name)

        assert lab.get(host.name) == host
        done = ssh(host, known, "ls /root/kept")
        assert done.returncode == 0, done.stderr  # same address, key and filesystem
    finally:
        lab.remove(host.name)


def test_teardown_leaves_no_containers_and_no_bridge(lab: DebianLab, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="a test failed"), debian_lab(tmp_path) as other:
        host = other.host("deb-gone", 0)
        assert other.bridge != lab.bridge and other.network != lab.network  # beside the lab
        assert sorted(other.containers()) == ["deb-gone", "deb-tmpl"]
        pid = other.lxc("lxc-info", "-n", host.name, "-pH").strip()
        upper = other.upper(host.name)
        raise RuntimeError("a test failed")  # teardown runs all the same

    assert not Path(f"/proc/{pid}").exists()
    assert not other.lxcpath.exists() and not upper.exists()
    gone = subprocess.run(["ip", "link", "show", other.bridge], capture_output=True)
    assert gone.returncode != 0
    assert (other.rootfs / "usr/bin/python3").exists()  # the cached rootfs stays
