"""The README's five-minute tour, run as a newcomer runs it: its own bash blocks, in order.

Terminal 1 (``scripts/run``) is a real ``watchkeeper up`` on the README's ports, started in
a scratch directory that holds the clone's ``.venv`` and ``examples``; terminal 2 is bash
with history expansion on, as in an interactive shell, so a ``!`` in a URL fails here as
it fails there. A command that fails stops the tour; each ``#   expected`` line of the
README must appear in what the tour printed.
"""

from __future__ import annotations

import os
import pwd
import re
import signal
import socket
import subprocess
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PORTS = (8470, 4730)


def tour_blocks(text: str) -> list[str]:
    """The bash blocks of the README's tour section, in order."""
    section = text.split("## A five-minute tour", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)


def terminal_two(blocks: list[str]) -> str:
    """Everything but terminal 1's ``scripts/run``, which the test starts itself."""
    lines = [line for block in blocks for line in block.splitlines()]
    return "\n".join(line for line in lines if not line.startswith("scripts/run"))


def expected_output(blocks: list[str]) -> list[str]:
    return [m for block in blocks for m in re.findall(r"^#   (.+)$", block, flags=re.MULTILINE)]


def test_the_tour_is_read_as_blocks_with_their_expected_output() -> None:
    blocks = tour_blocks(README.read_text())
    assert len(blocks) >= 3 and blocks[0].startswith("scripts/run")
    assert "scripts/run" not in terminal_two(blocks)
    assert "exit 1" in expected_output(blocks)


def _free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_the_readme_tour_runs_against_a_live_up(tmp_path: Path) -> None:
    busy = [port for port in PORTS if not _free(port)]
    assert not busy, f"the tour needs 127.0.0.1 ports {busy} free (is `scripts/run` running?)"
    user = pwd.getpwuid(os.getuid()).pw_name
    flag = Path(f"/tmp/watchkeeper-demo-fail-{user}")
    flag.unlink(missing_ok=True)
    for name in (".venv", "examples"):
        (tmp_path / name).symlink_to(ROOT / name)
    blocks = tour_blocks(README.read_text())
    script = tmp_path / "tour.sh"
    prologue = (
        "set -o history -o histexpand -e\ntrap 'echo \"tour failed at: $BASH_COMMAND\" >&2' ERR\n"
    )
    script.write_text(prologue + terminal_two(blocks) + "\n")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("WATCHKEEPER_") and key != "VIRTUAL_ENV"
    }
    env["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    up = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "watchkeeper"), "up"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    console: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert up.stdout is not None
        for line in up.stdout:
            console.append(line)
            if "log in at" in line:
                ready.set()
        ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(60) and up.poll() is None, "".join(console)
        tour = subprocess.run(
            ["bash", "--norc", "--noprofile", str(script)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=420,
            check=False,
        )
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(timeout=30)
        reader.join(timeout=10)
        if up.stdout is not None:
            up.stdout.close()
        flag.unlink(missing_ok=True)
    told = tour.stdout + tour.stderr
    assert tour.returncode == 0, f"the tour stopped (exit {tour.returncode}):\n{told[-4000:]}"
    missing = [line for line in expected_output(blocks) if line not in told]
    assert not missing, (missing, told[-4000:])
    assert "event not found" not in told
    assert up.returncode == 0, "".join(console[-40:])
    # What the tour claims happened did: a remediation ran, an operator acknowledged.
    assert '"state":"succeeded"' in tour.stdout
    assert '"comment":"looking"' in tour.stdout, tour.stdout[-2000:]
