"""The ssh executor against a real OpenSSH sshd, in a network namespace made for this run.

Once per module: a namespace ``wk-ssh-<pid>`` joined to this one by a veth pair on a free
10.213.x.y/30, and ``sshd -D`` inside it with its own host key and one authorized test
key. sshd runs in a private mount namespace where root's ~/.bashrc is hidden (sshd would
run it for every command), with ``MaxSessions 32``. Teardown kills what it started by pid
and deletes the link and namespace by name, whether the tests passed or not.

Needs root, ip(8), unshare(1) and /usr/sbin/sshd (``scripts/bootstrap --test``): without
them the tests skip, saying what is missing, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import pwd
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from tests.fixtures.prerequisites import unavailable
from tests.waiting import wait_until
from watchkeeper.results import CheckState, Metric
from watchkeeper.worker.executors import Executors, PluginExecutor, SshExecutor
from watchkeeper.worker.executors.ssh import known_hosts_line

SSHD = Path("/usr/sbin/sshd")
CHECK_DUMMY = "/usr/lib/nagios/plugins/check_dummy"
#: Blocks of four addresses in 10.213.0.0/16; a run starts looking at its pid's block.
BLOCKS = 2**16 // 4


def missing_prerequisites() -> list[str]:
    missing = [] if os.geteuid() == 0 else ["root (network namespaces)"]
    missing += [tool for tool in ("ip", "unshare", "ss") if shutil.which(tool) is None]
    if not SSHD.exists():
        missing.append(f"{SSHD} (openssh-server: scripts/bootstrap --test)")
    return missing


def run(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if done.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def free_block(pid: int) -> tuple[str, str]:
    """Host and namespace addresses of a /30 no interface here uses, starting from ``pid``."""
    used = [
        ipaddress.ip_interface(word)
        for line in run("ip", "-o", "-4", "addr", "show").splitlines()
        for word in line.split()[3:4]
    ]
    for step in range(BLOCKS):
        first = ipaddress.IPv4Address("10.213.0.0") + (pid + step) % BLOCKS * 4
        subnet = ipaddress.ip_network(f"{first}/30")
        if not any(interface.ip in subnet for interface in used):
            return str(first + 1), str(first + 2)
    raise RuntimeError("no free /30 in 10.213.0.0/16")


@dataclass(frozen=True)
class Sshd:
    namespace: str
    address: str
    host_key: asyncssh.SSHKey
    #: An authorized private key, as a file for ``file:`` references.
    client_key: Path
    #: Another authorized private key.
    second_key: asyncssh.SSHKey
    process: subprocess.Popen[bytes]
    log: Path

    def check(self, *command: str, **fields: Any) -> dict[str, Any]:
        base = {"kind": "ssh", "command": list(command), "user": "root"}
        return base | {"key": f"file:{self.client_key}"} | fields

    def known_hosts(self) -> str:
        return known_hosts_line(self.address, 22, self.host_key)

    def connections(self) -> int:
        """SSH connections sshd has open, counted in its namespace."""
        listing = run("ip", "netns", "exec", self.namespace, "ss", "-Htn", "state", "established")
        return sum(f"{self.address}:22 " in line for line in listing.splitlines())

    def session_pids(self) -> list[int]:
        listing = run("ip", "netns", "exec", self.namespace, "ss", "-Htnp", "state", "established")
        return [
            int(part.split("pid=")[1].split(",")[0])
            for line in listing.splitlines()
            if f"{self.address}:22 " in line
            for part in line.split("users:")[1:]
        ]


@pytest.fixture(scope="module")
def sshd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """sshd in a namespace of its own, started once for the module; see the module docstring."""
    if missing := missing_prerequisites():
        unavailable(f"ssh executor tests need {', '.join(missing)}")
    pid = os.getpid()
    namespace, host_side, ns_side = f"wk-ssh-{pid}", f"wks{pid}a", f"wks{pid}b"
    directory = tmp_path_factory.mktemp("sshd")
    with contextlib.ExitStack() as cleanup:
        run("ip", "netns", "add", namespace)
        cleanup.callback(run, "ip", "netns", "del", namespace)
        run("ip", "link", "add", host_side, "type", "veth", "peer", "name", ns_side)
        cleanup.callback(_quietly, "ip", "link", "del", host_side)  # takes the peer along
        host_address, address = free_block(pid)
        run("ip", "link", "set", ns_side, "netns", namespace)
        run("ip", "addr", "add", f"{host_address}/30", "dev", host_side)
        run("ip", "link", "set", host_side, "up")
        inside = ("ip", "netns", "exec", namespace)
        run(*inside, "ip", "addr", "add", f"{address}/30", "dev", ns_side)
        run(*inside, "ip", "link", "set", ns_side, "up")
        run(*inside, "ip", "link", "set", "lo", "up")

        host_key = asyncssh.generate_private_key("ssh-ed25519")
        client_key = asyncssh.generate_private_key("ssh-ed25519")
        second_key = asyncssh.generate_private_key("ssh-ed25519")
        (directory / "host_key").write_bytes(host_key.export_private_key())
        (directory / "client_key").write_bytes(client_key.export_private_key())
        (directory / "authorized_keys").write_bytes(
            client_key.export_public_key() + second_key.export_public_key()
        )
        for name in ("host_key", "client_key"):
            (directory / name).chmod(0o600)
        (directory / "empty").write_text("")
        config = directory / "sshd_config"
        config.write_text(
            f"ListenAddress {address}\n"
            "Port 22\n"
            f"HostKey {directory / 'host_key'}\n"
            f"AuthorizedKeysFile {directory / 'authorized_keys'}\n"
            f"PidFile {directory / 'sshd.pid'}\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "UsePAM no\n"
            "StrictModes no\n"
            "MaxSessions 32\n"
            "PermitRootLogin prohibit-password\n"
        )
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation; kept
        bashrc = Path(pwd.getpwuid(0).pw_dir) / ".bashrc"
        script = (
            'if [ -e "$BASHRC" ]; then mount --bind "$EMPTY" "$BASHRC" || exit 1; fi; '
            f'exec {SSHD} -D -e -f "$CONFIG"'
        )
        log = directory / "sshd.log"
        with log.open("wb") as log_file:
            process = subprocess.Popen(
                [*inside, "unshare", "-m", "--propagation", "private", "sh", "-c", script],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env={
                    "PATH": os.environ.get("PATH", os.defpath),
                    "BASHRC": str(bashrc),
                    "EMPTY": str(directory / "empty"),
                    "CONFIG": str(config),
                },
                start_new_session=True,
            )
        cleanup.callback(_stop, process, namespace)
        client_key_path = directory / "client_key"
        yield Sshd(namespace, address, host_key, client_key_path, second_key, process, log)


def _quietly(*argv: str) -> None:
    with contextlib.suppress(RuntimeError):
        run(*argv)


def _stop(process: subprocess.Popen[bytes], namespace: str) -> None:
    """Kill sshd's process group, then whatever it left in the namespace (by pid)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    for pid in run("ip", "netns", "pids", namespace).split():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)


@pytest.fixture
async def sshd(sshd_server: Sshd) -> Sshd:
    """The module's sshd, once it accepts connections (at once after the first test)."""

    async def listening() -> bool:
        if sshd_server.process.poll() is not None:
            raise AssertionError(f"sshd exited: {sshd_server.log.read_text()}")
        try:
            _, writer = await asyncio.open_connection(sshd_server.address, 22)
        except OSError:
            return False
        writer.close()
        await writer.wait_closed()
        return True

    await wait_until(listening, what=f"sshd accepting on {sshd_server.address}:22")
    return sshd_server


@pytest.fixture(scope="module")
def check_dummy() -> str:
    if not Path(CHECK_DUMMY).exists():
        unavailable(f"needs {CHECK_DUMMY} (monitoring-plugins-basic)")
    return CHECK_DUMMY


Make = Callable[..., SshExecutor]


@pytest.fixture
async def make(tmp_path: Path) -> AsyncIterator[Make]:
    """SshExecutors using ``tmp_path/known_hosts`` unless told otherwise; closed afterwards."""
    made: list[SshExecutor] = []

    def factory(**kwargs: Any) -> SshExecutor:
        kwargs.setdefault("known_hosts_path", tmp_path / "known_hosts")
        executor = SshExecutor(**kwargs)
        made.append(executor)
        return executor

    yield factory
    for executor in made:
        await executor.aclose()


@pytest.fixture
def trusted(tmp_path: Path, sshd: Sshd) -> Path:
    """``tmp_path/known_hosts`` holding sshd's host key."""
    path = tmp_path / "known_hosts"
    path.write_text(sshd.known_hosts())
    return path


async def same_as_plugin(ssh: SshExecutor, sshd: Sshd, *command: str) -> None:
    """The remote run reads exactly as the plugin executor reads the same command here."""
    remote = await ssh.run(sshd.check(*command), address=sshd.address, timeout=10)
    local = await PluginExecutor().run(
        {"kind": "plugin", "command": list(command)}, address=sshd.address, timeout=10
    )
    assert (remote.state, remote.output, remote.long_output, remote.metrics) == (
        local.state,
        local.output,
        local.long_output,
        local.metrics,
    )


# --- exit status and output ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "state"),
    [
        (0, CheckState.OK),
        (1, CheckState.WARNING),
        (2, CheckState.CRITICAL),
        (3, CheckState.UNKNOWN),
    ],
)
@pytest.mark.usefixtures("trusted", "check_dummy")
async def test_check_dummy_states_and_perfdata(
    make: Make, sshd: Sshd, code: int, state: CheckState
) -> None:
    ssh = make()
    check = sshd.check(CHECK_DUMMY, str(code), "the text | load=2.5;2;4;0")
    out = await ssh.run(check, address=sshd.address, timeout=10)
    assert out.state is state, out
    assert out.output == f"{state.name}: the text"
    assert out.metrics == (Metric(label="load", value=2.5, warn="2", crit="4", min=0.0),)
    assert 0 < out.duration < 10
    await same_as_plugin(ssh, sshd, CHECK_DUMMY, str(code), "the text | load=2.5;2;4;0")


@pytest.mark.usefixtures("trusted")
async def test_long_output_and_perfdata_lines(make: Make, sshd: Sshd) -> None:
    script = "printf 'DISK OK - fine | a=1\\nsecond line\\nthird line | b=2;3\\n'; exit 0"
    ssh = make()
    out = await ssh.run(sshd.check("sh", "-c", script), address=sshd.address, timeout=10)
    assert out.state is CheckState.OK
    assert out.output == "DISK OK - fine"
    assert out.long_output == "second line\nthird line"
    assert out.metrics == (Metric(label="a", value=1.0), Metric(label="b", value=2.0, warn="3"))
    await same_as_plugin(ssh, sshd, "sh", "-c", script)


@pytest.mark.usefixtures("trusted")
async def test_exit_status_out_of_range_is_critical_or_as_set(make: Make, sshd: Sshd) -> None:
    ssh = make()
    check = sshd.check("sh", "-c", "echo 'odd things'; echo oops >&2; exit 7")
    chosen = await ssh.run({**check, "out_of_bounds_state": "UNKNOWN"}, address=sshd.address,
                           timeout=10)  # fmt: skip
    assert chosen.state is CheckState.UNKNOWN
    out = await ssh.run(check, address=sshd.address, timeout=10)
    assert out.state is CheckState.CRITICAL
    assert out.output == "(Return code of 7 is out of bounds) odd things"
    assert out.long_output == "oops"
    await same_as_plugin(ssh, sshd, "sh", "-c", "echo 'odd things'; echo oops >&2; exit 7")


@pytest.mark.usefixtures("trusted")
async def test_arguments_reach_the_remote_command_unsplit(make: Make, sshd: Sshd) -> None:
    check = sshd.check("printf", "%s/", "two words", "$HOME", "it's")
    out = await make().run(check, address=sshd.address, timeout=10)
    assert out.output == "two words/$HOME/it's/"


# --- known hosts --------------------------------------------------------------------------


async def test_strict_refuses_an_unknown_host_and_runs_nothing(
    make: Make, sshd: Sshd, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    (tmp_path / "known_hosts").write_text("")
    out = await make().run(sshd.check("touch", str(marker)), address=sshd.address, timeout=10)
    assert out.state is CheckState.UNKNOWN
    assert out.output.startswith(
        f"SSH UNKNOWN - host key of {sshd.address}:22 is not in known_hosts "
        f"({tmp_path / 'known_hosts'}) and known_hosts is strict (it offered ssh-ed25519 SHA256:"
    )
    assert not marker.exists()
    assert (tmp_path / "known_hosts").read_text() == ""


async def test_accept_new_records_the_key_then_strict_accepts_it(
    make: Make, sshd: Sshd, tmp_path: Path
) -> None:
    known_hosts = tmp_path / "ssh" / "known_hosts"  # the directory does not exist yet
    marker = tmp_path / "ran"
    check = sshd.check("touch", str(marker), known_hosts="accept-new")
    out = await make(known_hosts_path=known_hosts).run(check, address=sshd.address, timeout=10)
    assert out.state is CheckState.OK, out
    assert marker.exists()
    assert known_hosts.read_text() == sshd.known_hosts()
    assert known_hosts.stat().st_mode & 0o777 == 0o600
    assert known_hosts.parent.stat().st_mode & 0o777 == 0o700

    marker.unlink()
    strict = sshd.check("touch", str(marker))
    out = await make(known_hosts_path=known_hosts).run(strict, address=sshd.address, timeout=10)
    assert out.state is CheckState.OK, out
    assert marker.exists()
    assert known_hosts.read_text() == sshd.known_hosts()  # still one line


async def test_concurrent_first_contacts_record_one_line(
    make: Make, sshd: Sshd, tmp_path: Path
) -> None:
    """Separate executors (separate connections) race to the same new host."""
    check = sshd.check("true", known_hosts="accept-new")
    outs = await asyncio.gather(
        *(make().run(check, address=sshd.address, timeout=10) for _ in range(6))
    )
    assert [out.state for out in outs] == [CheckState.OK] * 6, outs
    assert (tmp_path / "known_hosts").read_text() == sshd.known_hosts()


@pytest.mark.parametrize("policy", ["strict", "accept-new"])
async def test_a_changed_host_key_is_refused(
    make: Make, sshd: Sshd, tmp_path: Path, policy: str
) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519")
    lines = known_hosts_line(sshd.address, 22, other)
    (tmp_path / "known_hosts").write_text(lines)
    marker = tmp_path / "ran"
    check = sshd.check("touch", str(marker), known_hosts=policy)
    out = await make().run(check, address=sshd.address, timeout=10)
    assert out.state is CheckState.UNKNOWN
    assert out.output == (
        f"SSH UNKNOWN - host key of {sshd.address}:22 does not match known_hosts "
        f"({tmp_path / 'known_hosts'}; it offered ssh-ed25519 "
        f"{sshd.host_key.get_fingerprint('sha256')})"
    )
    assert not marker.exists()
    assert (tmp_path / "known_hosts").read_text() == lines


# --- failures -----------------------------------------------------------------------------


@pytest.mark.usefixtures("trusted")
async def test_a_key_the_host_does_not_authorize(make: Make, sshd: Sshd) -> None:
    stranger = asyncssh.generate_private_key("ssh-ed25519")
    environ = {"WK_TEST_KEY": stranger.export_private_key().decode()}
    check = sshd.check("true", key="env:WK_TEST_KEY")
    out = await make(environ=environ).run(check, address=sshd.address, timeout=10)
    assert out.state is CheckState.UNKNOWN
    assert out.output == (
        f"SSH UNKNOWN - authentication as root on {sshd.address}:22 failed: "
        f"key {stranger.get_fingerprint('sha256')} refused"
    )


@pytest.mark.usefixtures("trusted")
async def test_the_key_from_the_environment(make: Make, sshd: Sshd) -> None:
    environ = {"WK_TEST_KEY": sshd.client_key.read_text()}
    check = sshd.check("echo", "OK - via env", key="env:WK_TEST_KEY")
    out = await make(environ=environ).run(check, address=sshd.address, timeout=10)
    assert (out.state, out.output) == (CheckState.OK, "OK - via env")


@pytest.mark.usefixtures("trusted")
async def test_connection_refused(make: Make, sshd: Sshd) -> None:
    check = sshd.check("true", port=2222)
    out = await make().run(check, address=sshd.address, timeout=10)
    assert out.state is CheckState.UNKNOWN
    assert out.output == f"SSH UNKNOWN - connection refused by {sshd.address}:2222"


@pytest.mark.usefixtures("trusted")
async def test_timeout_closes_the_channel_and_retires_the_connection(
    make: Make, sshd: Sshd, tmp_path: Path
) -> None:
    """The command stops at its next write (OpenSSH ignores the KILL sent for root logins);
    the next check gets a fresh connection, whose sessions are all free."""
    ssh = make()
    warm = await ssh.run(sshd.check("true"), address=sshd.address, timeout=10)
    assert warm.state is CheckState.OK
    pid_file = tmp_path / "pid"
    script = f"echo started; echo $$ > {pid_file}; while :; do sleep 0.05; echo tick; done"
    started = time.monotonic()
    out = await ssh.run(sshd.check("sh", "-c", script), address=sshd.address, timeout=0.5)
    assert time.monotonic() - started < 2
    assert out.state is CheckState.UNKNOWN
    assert out.output == (
        f"SSH UNKNOWN - timed out after 0.5s running the command on {sshd.address}:22"
    )
    assert out.long_output.startswith("started\ntick")
    remote = int(pid_file.read_text())
    await wait_until(lambda: not running(remote), what="the remote command gone")
    again = await ssh.run(sshd.check("true"), address=sshd.address, timeout=10)
    assert again.state is CheckState.OK
    assert ssh.connections == 1
    await wait_until(lambda: sshd.connections() == 1, what="the timed-out connection closed")


def running(pid: int) -> bool:
    """True while ``pid`` runs; a zombie waiting to be reaped counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


# --- connection reuse ---------------------------------------------------------------------


@pytest.mark.usefixtures("trusted")
async def test_concurrent_checks_share_one_connection(make: Make, sshd: Sshd) -> None:
    """20 at once through 8 channels at a time, over one connection (sshd: MaxSessions 32)."""
    ssh = make()
    checks = [sshd.check("sh", "-c", f"sleep 0.1; echo 'OK - {n} | n={n}'") for n in range(20)]
    outs = await asyncio.gather(*(ssh.run(c, address=sshd.address, timeout=20) for c in checks))
    assert [(out.state, out.output) for out in outs] == [
        (CheckState.OK, f"OK - {n}") for n in range(20)
    ]
    assert ssh.connections == 1
    assert sshd.connections() == 1


@pytest.mark.usefixtures("trusted")
async def test_a_host_with_fewer_sessions_refuses_the_rest(make: Make, sshd: Sshd) -> None:
    ssh = make(max_sessions=40)  # sshd allows 32
    check = sshd.check("sleep", "0.5")
    outs = await asyncio.gather(
        *(ssh.run(check, address=sshd.address, timeout=10) for _ in range(40))
    )
    refused = [out.output for out in outs if out.state is CheckState.UNKNOWN]
    assert len(refused) == 8, outs
    assert set(refused) == {
        f"SSH UNKNOWN - {sshd.address}:22 refused a session (open failed); "
        "is its MaxSessions below 40?"
    }
    out = await ssh.run(sshd.check("true"), address=sshd.address, timeout=10)
    assert out.state is CheckState.OK  # on a new connection


@pytest.mark.usefixtures("trusted")
async def test_aclose_closes_the_connections(make: Make, sshd: Sshd) -> None:
    environ = {"WK_TEST_KEY": sshd.second_key.export_private_key().decode()}
    ssh = make(environ=environ)
    await ssh.run(sshd.check("true"), address=sshd.address, timeout=10)
    await ssh.run(sshd.check("true", key="env:WK_TEST_KEY"), address=sshd.address, timeout=10)
    assert ssh.connections == 2  # one per key
    await wait_until(lambda: sshd.connections() == 2, what="sshd sees two connections")
    await ssh.aclose()
    assert ssh.connections == 0
    await wait_until(lambda: sshd.connections() == 0, what="sshd sees the connection close")


@pytest.mark.usefixtures("trusted")
async def test_idle_connections_close(make: Make, sshd: Sshd) -> None:
    ssh = make(idle_timeout=0.2)
    out = await ssh.run(sshd.check("true"), address=sshd.address, timeout=10)
    assert out.state is CheckState.OK
    await wait_until(lambda: ssh.connections == 0, what="idle connection closed")
    await wait_until(lambda: sshd.connections() == 0, what="sshd sees it close")
    again = await ssh.run(sshd.check("true"), address=sshd.address, timeout=10)
    assert again.state is CheckState.OK


@pytest.mark.usefixtures("trusted")
async def test_a_connection_the_server_drops_is_replaced(make: Make, sshd: Sshd) -> None:
    ssh = make()
    await ssh.run(sshd.check("true"), address=sshd.address, timeout=10)
    for pid in sshd.session_pids():  # the per-connection sshd: as if the host rebooted
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    await wait_until(lambda: ssh.connections == 0, what="the lost connection dropped")
    out = await ssh.run(sshd.check("echo", "OK - back"), address=sshd.address, timeout=10)
    assert (out.state, out.output) == (CheckState.OK, "OK - back")


async def test_through_the_executors_registry(sshd: Sshd, trusted: Path) -> None:
    executors = Executors({"ssh": lambda: SshExecutor(known_hosts_path=trusted)})
    try:
        out = await executors.run(
            sshd.check("echo", "OK - registry"), address=sshd.address, timeout=10
        )
    finally:
        await executors.aclose()
    assert (out.state, out.output) == (CheckState.OK, "OK - registry")
