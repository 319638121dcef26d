"""The one image, built by ``scripts/build-image`` and run as an operator runs it.

Builds from this checkout into a temporary OCI layout, then: four layers within their
sizes; ``up`` and an enrolled ``worker`` started from the same image (podman with runc,
with the ulimit workaround of docs/image.md), the worker's plugin checks OK, each
container's writable layer under 1 MB after 60 s; both roles again with a read-only root;
a rebuild of a copy with a one-line change differs only in layer 4; and, with no engine at
all, the unpacked rootfs runs ``--version`` and ``validate`` in a chroot.

Needs root, buildah, podman, runc, skopeo, umoci and debootstrap (``scripts/bootstrap
--test``); skips saying what is missing, and fails instead under ``CI=true``. The
debootstrap'd base and the wheels are cached between runs (docs/image.md).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.fixtures.prerequisites import unavailable

REPO = Path(__file__).resolve().parents[2]
TOOLS = ("buildah", "podman", "runc", "skopeo", "umoci", "debootstrap")
#: What runs here: runc (crun cannot set up cgroups on this kind of VM), and ulimits below
#: the hard limits (the VM lacks CAP_SYS_RESOURCE), as docs/image.md says.
PODMAN = ("podman", "--cgroup-manager", "cgroupfs", "--events-backend", "file",
          "--runtime", "runc")  # fmt: skip
RUN = ("--network", "host", "--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096")
MB = 1_000_000

pytestmark = [pytest.mark.image, pytest.mark.timeout(1500)]


def run(*argv: str, input: str | None = None, timeout: float = 900) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, input=input, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return done.stdout


def podman(*argv: str, input: str | None = None) -> str:
    return run(*PODMAN, *argv, input=input, timeout=120)


@dataclass(frozen=True)
class Built:
    tag: str
    layout: Path
    image_id: str

    def manifest(self) -> dict[str, object]:
        return json.loads(run("skopeo", "inspect", "--raw", f"oci:{self.layout}:watchkeeper"))

    def config(self) -> dict[str, object]:
        return json.loads(run("skopeo", "inspect", "--config", f"oci:{self.layout}:watchkeeper"))

    def diff_ids(self) -> list[str]:
        rootfs = self.config()["rootfs"]
        assert isinstance(rootfs, dict)
        return list(rootfs["diff_ids"])


def build(checkout: Path, tag: str, layout: Path) -> Built:
    env = {**os.environ, "PYTHON": sys.executable}
    done = subprocess.run(
        [str(checkout / "scripts/build-image"), "--tag", tag, "--output", str(layout)],
        capture_output=True, text=True, env=env, cwd=checkout, timeout=1200,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    image_id = run("buildah", "inspect", "--type", "image", "--format", "{{.FromImageID}}", tag)
    return Built(tag, layout, image_id.strip())


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    if os.geteuid() != 0:
        unavailable("the image tests need root (debootstrap, buildah and podman storage)")
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        unavailable(f"the image tests need {', '.join(missing)} (scripts/bootstrap --test)")
    tag = f"localhost/watchkeeper-test:{os.getpid()}"
    image = build(REPO, tag, tmp_path_factory.mktemp("oci") / "image")
    try:
        yield image
    finally:
        subprocess.run(["buildah", "rmi", tag], capture_output=True, check=False)


def test_four_layers_least_changed_first_within_their_sizes(built: Built) -> None:
    layers = built.manifest()["layers"]
    assert isinstance(layers, list)
    sizes = [int(layer["size"]) for layer in layers]
    assert len(sizes) == 4, sizes
    assert sum(sizes) <= 85 * MB, sizes  # the "~80 MB": 81.7 measured (docs/image.md)
    assert sizes[3] <= 5 * MB, sizes  # the Watchkeeper wheel
    config = built.config()
    settings = config["config"]
    assert isinstance(settings, dict)
    assert settings["Entrypoint"] == ["/opt/watchkeeper/bin/watchkeeper"]
    assert settings["Cmd"] == ["up"]
    assert settings["User"] == "10001:10001"
    labels = settings["Labels"]
    assert labels["org.opencontainers.image.title"] == "watchkeeper"
    assert labels["org.opencontainers.image.version"]
    assert config["created"] == "2026-01-01T00:00:00Z"  # SOURCE_DATE_EPOCH, not the clock


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def document() -> dict[str, object]:
    """A check for the embedded worker, and three plugins for edge1's agent: the enrolled
    worker, which alone runs agent checks (``up``'s embedded worker serves every zone)."""
    fast = {"interval": "2s", "retry_interval": "2s", "max_attempts": 1, "timeout": "10s"}
    plugins = "/usr/lib/nagios/plugins"
    return {
        "schema": "watchkeeper/v1",
        "zones": [{"name": "local"}, {"name": "edge"}],
        "hosts": [
            {"name": "manager", "address": "127.0.0.1", "zone": "local"},
            {"name": "edge1", "address": "127.0.0.1", "zone": "edge"},
        ],
        "services": [
            {"name": "dummy", "hosts": ["manager"], **fast,
             "check": {"kind": "plugin", "command": [f"{plugins}/check_dummy", "0", "fine"]}},
            {"name": "agent-dummy", "hosts": ["edge1"], **fast,
             "check": {"kind": "agent", "command": [f"{plugins}/check_dummy", "0", "fine"]}},
            {"name": "load", "hosts": ["edge1"], **fast,
             "check": {"kind": "agent",
                       "command": [f"{plugins}/check_load", "-w", "99,99,99", "-c", "99,99,99"]}},
            {"name": "disk", "hosts": ["edge1"], **fast,
             "check": {"kind": "agent",
                       "command": [f"{plugins}/check_disk", "-w", "1%", "-c", "1%", "-p", "/"]}},
        ],
    }  # fmt: skip


@dataclass
class Pair:
    """A manager (``up``) and an enrolled worker from one image."""

    manager: str
    worker: str
    url: str
    token: str
    #: What `serving` saw last, for the message when it never is.
    seen: str = ""

    def api(self, path: str) -> object:
        reply = httpx.get(
            f"{self.url}/api/v1/{path}", headers={"Authorization": f"Bearer {self.token}"}
        )
        reply.raise_for_status()
        return reply.json()


def eventually(probe: Callable[[], object], within: float, what: str | Callable[[], str]) -> object:
    deadline = time.monotonic() + within
    while True:
        try:
            found = probe()
        except (httpx.HTTPError, AssertionError, OSError):
            found = None
        if found:
            return found
        assert time.monotonic() < deadline, (
            f"{what if isinstance(what, str) else what()} within {within} s"
        )
        time.sleep(0.5)


def start_pair(built: Built, tmp: Path, name: str, *, read_only: bool) -> Pair:
    http, jobs = free_port(), free_port()
    doc = tmp / f"{name}.json"
    doc.write_text(json.dumps(document()))
    doc.chmod(0o644)
    root = ["--read-only"] if read_only else ["--tmpfs", "/tmp"]  # podman adds /tmp itself
    manager, worker = f"{name}-manager", f"{name}-worker"
    for volume in (manager, worker):
        podman("volume", "create", volume)
    podman(
        "run", "-d", "--name", manager, *RUN, *root,
        "-v", f"{manager}:/var/lib/watchkeeper", "-v", f"{doc}:/etc/watchkeeper/doc.json:ro",
        "-e", f"WATCHKEEPER_HTTP=127.0.0.1:{http}", "-e", f"WATCHKEEPER_JOBS=127.0.0.1:{jobs}",
        built.tag, "up", "/etc/watchkeeper/doc.json",
    )  # fmt: skip
    key = "/var/lib/watchkeeper/worker.key"
    podman("run", "--rm", *RUN, "-v", f"{worker}:/var/lib/watchkeeper", built.tag, "keygen", key)
    public = podman("run", "--rm", *RUN, "-v", f"{worker}:/var/lib/watchkeeper",
                    "--entrypoint", "cat", built.tag, f"{key}.pub")  # fmt: skip
    token = str(
        eventually(
            lambda: podman("exec", manager, "cat", "/var/lib/watchkeeper/api-token").strip(),
            within=60,
            what=f"{manager} wrote its token",
        )
    )
    podman("exec", "-i", manager, "watchkeeper", "worker-key", "add", "w1", "--zones", "edge",
           "--agent-for", "edge1", "--public-key", "/dev/stdin", input=public)  # fmt: skip
    fingerprint = podman("exec", manager, "watchkeeper", "keys").strip()
    podman(
        "run", "-d", "--name", worker, *RUN, *root, "-v", f"{worker}:/var/lib/watchkeeper",
        built.tag, "worker", "--manager", f"127.0.0.1:{jobs}", "--key", key,
        "--manager-fingerprint", fingerprint, "--name", "w1",
    )  # fmt: skip
    return Pair(manager, worker, f"http://127.0.0.1:{http}", token)


def stop_pair(pair: Pair) -> None:
    for name in (pair.worker, pair.manager):
        subprocess.run([*PODMAN, "rm", "-f", "-t", "5", name], capture_output=True, check=False)
        subprocess.run([*PODMAN, "volume", "rm", "-f", name], capture_output=True, check=False)


def check_states(pair: Pair) -> dict[str, str]:
    listing = pair.api("checks?limit=100")
    assert isinstance(listing, dict)
    return {item["key"]: item["state"] for item in listing["items"]}


def serving(pair: Pair) -> bool:
    """Both workers connected and every check OK: the agent's three ran from layer 2."""
    workers = pair.api("workers")
    assert isinstance(workers, dict)
    names = sorted(w["name"] for w in workers["items"])
    states = check_states(pair)
    pair.seen = f"workers {names}, checks {states}"
    return names == ["embedded", "w1"] and len(states) == 4 and set(states.values()) == {"OK"}


def healthy(container: str) -> bool:
    done = subprocess.run([*PODMAN, "exec", container, "watchkeeper", "health"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    return done.returncode == 0 and done.stdout.startswith("healthy: ")


def test_both_roles_run_from_one_image_write_nothing_into_it_and_rebuild_to_one_new_layer(
    built: Built, tmp_path: Path
) -> None:
    # The release delta, built while the containers run: a copy with a one-line change.
    copy = tmp_path / "checkout"
    files = run("git", "-C", str(REPO), "ls-files", "-z").split("\0")
    for name in filter(None, files):
        target = copy / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if (REPO / name).is_file():
            shutil.copy2(REPO / name, target)
    cli = copy / "src/watchkeeper/cli/parser.py"
    cli.write_text(cli.read_text().replace("Operations platform driven", "An operations platform"))
    rebuilt: list[Built] = []
    rebuild = threading.Thread(
        target=lambda: rebuilt.append(
            build(copy, f"{built.tag}-changed", tmp_path / "changed" / "image")
        )
    )

    writable = start_pair(built, tmp_path, f"wk-rw-{os.getpid()}", read_only=False)
    read_only = start_pair(built, tmp_path, f"wk-ro-{os.getpid()}", read_only=True)
    started = time.monotonic()
    rebuild.start()
    try:
        for pair in (writable, read_only):
            eventually(
                lambda p=pair: serving(p),
                within=120,
                what=lambda p=pair: f"{p.manager} serving (saw {p.seen})",
            )
            for container in (pair.manager, pair.worker):
                image = podman("inspect", container, "--format", "{{.Image}}").strip()
                assert image == built.image_id, container  # the same image, by digest
                assert eventually(lambda c=container: healthy(c), within=60, what=container)
        time.sleep(max(0.0, 60 - (time.monotonic() - started)))  # the 60 s of running
        sizes = {
            entry["Names"][0]: entry["Size"]["rwSize"]
            for entry in json.loads(podman("ps", "--size", "--format", "json"))
            if entry["Names"][0] in (writable.manager, writable.worker)
        }
        assert len(sizes) == 2 and all(size < 1 * MB for size in sizes.values()), sizes
        assert serving(writable) and serving(read_only)  # still, after the minute
    finally:
        stop_pair(writable)
        stop_pair(read_only)
        rebuild.join(timeout=1200)
    assert rebuilt, "the rebuild of the changed copy failed (see the captured log)"
    changed = rebuilt[0]
    try:
        before, after = built.diff_ids(), changed.diff_ids()
        assert before[:3] == after[:3]  # byte for byte: the same layers 1-3
        assert before[3] != after[3]
        layers = changed.manifest()["layers"]
        assert isinstance(layers, list) and int(layers[3]["size"]) <= 5 * MB
    finally:
        subprocess.run(["buildah", "rmi", changed.tag], capture_output=True, check=False)


def test_without_an_engine_the_unpacked_rootfs_runs_in_a_chroot(
    built: Built, tmp_path: Path
) -> None:
    bundle = tmp_path / "bundle"
    run("umoci", "unpack", "--image", f"{built.layout}:watchkeeper", str(bundle))
    rootfs = bundle / "rootfs"
    shutil.copy(REPO / "examples/demo.json", rootfs / "tmp/demo.json")
    env = ["env", "-i", "PATH=/opt/watchkeeper/bin:/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE=1"]
    chroot = ["chroot", "--userspec=10001:10001", str(rootfs), *env]
    assert run(*chroot, "watchkeeper", "--version").strip().startswith("watchkeeper ")
    out = run(*chroot, "watchkeeper", "validate", "/tmp/demo.json", "--format", "json")
    assert json.loads(out)["valid"] is True
    sbom = json.loads((rootfs / "usr/share/watchkeeper/sbom.json").read_text())
    names = {p["name"] for p in sbom["packages"]}
    assert {"python3", "monitoring-plugins-basic", "watchkeeper", "pydantic"} <= names
