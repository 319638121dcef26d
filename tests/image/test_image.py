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
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.image import (
    MB,
    TOOLS,
    Built,
    build,
    eventually,
    healthy,
    podman,
    run,
    serving,
    start_pair,
    stop_pair,
)
from tests.fixtures.prerequisites import unavailable

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.image, pytest.mark.timeout(1500)]


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
