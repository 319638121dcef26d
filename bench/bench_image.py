"""The image's figures: layer sizes, build times, time to first check per role, and each
instance's writable layer after some minutes of running.

    .venv/bin/python bench/bench_image.py [--minutes 10] [--skip-cold]

Needs root, buildah, podman, runc, skopeo, umoci and debootstrap (scripts/bootstrap --test).
"Cold" builds with an empty base-and-wheel cache and ``--no-cache`` (pip's own download
cache stays warm); "warm" rebuilds the same tree. Prints a table per figure.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.image import (
    MB,
    PODMAN,
    Built,
    build,
    check_states,
    eventually,
    podman,
    run,
    start_pair,
    stop_pair,
)

REPO = Path(__file__).resolve().parents[1]


def timed_build(tag: str, layout: Path, *, cache: Path | None, no_cache: bool) -> float:
    env = {**os.environ, "PYTHON": sys.executable}
    if cache is not None:
        env["WATCHKEEPER_IMAGE_CACHE"] = str(cache)
    argv = [str(REPO / "scripts/build-image"), "--tag", tag, "--output", str(layout)]
    began = time.monotonic()
    subprocess.run([*argv, *(["--no-cache"] if no_cache else [])], check=True, env=env,
                   capture_output=True, cwd=REPO)  # fmt: skip
    return time.monotonic() - began


def layer_table(built: Built) -> None:
    layers = built.manifest()["layers"]
    assert isinstance(layers, list)
    names = ["1 base: Debian + python3", "2 plugins + tools", "3 locked dependencies",
             "4 watchkeeper"]  # fmt: skip
    print(f"{'layer':28} {'compressed MB':>14} {'uncompressed MB':>16}")
    total_c = total_u = 0
    for name, layer in zip(names, layers, strict=True):
        blob = built.layout / "blobs" / "sha256" / str(layer["digest"]).split(":")[1]
        with gzip.open(blob) as f:
            size = 0
            while chunk := f.read(1 << 20):
                size += len(chunk)
        total_c += int(layer["size"])
        total_u += size
        print(f"{name:28} {int(layer['size']) / MB:14.1f} {size / MB:16.1f}")
    print(f"{'total':28} {total_c / MB:14.1f} {total_u / MB:16.1f}")


def first_checks(built: Built, tmp: Path, minutes: float) -> None:
    began = time.time()
    pair = start_pair(built, tmp, f"wk-bench-{os.getpid()}", read_only=False)
    try:

        def first(prefix: str) -> float:
            def ok() -> bool:
                states = check_states(pair)
                return any(k.startswith(prefix) and v == "OK" for k, v in states.items())

            eventually(ok, within=180, what=f"a {prefix} check OK")
            return time.time()

        up_at = first("manager!")
        worker_started = float(
            podman("inspect", pair.worker, "--format", "{{.State.StartedAt.Unix}}").strip()
        )
        worker_first = first("edge1!") - worker_started
        print(f"{'role':10} {'time to first check OK (s)':>28}")
        print(f"{'up':10} {up_at - began:28.1f}   (from podman run, first start: migrations, keys)")
        print(f"{'worker':10} {worker_first:28.1f}   (from the worker container's start)")
        print(f"running {minutes:g} min ...", flush=True)
        time.sleep(max(0.0, began + minutes * 60 - time.time()))
        sizes = {
            entry["Names"][0]: entry["Size"]["rwSize"]
            for entry in json.loads(podman("ps", "--size", "--format", "json"))
            if entry["Names"][0] in (pair.manager, pair.worker)
        }
        print(f"{'instance':24} {'writable layer after ' + format(minutes, 'g') + ' min':>30}")
        for name, size in sizes.items():
            print(f"{name:24} {size:>28} B")
        print(run(*PODMAN, "system", "df"))
    finally:
        stop_pair(pair)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--skip-cold", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wk-bench-image-") as tmp_name:
        tmp = Path(tmp_name)
        tag = f"localhost/watchkeeper-bench:{os.getpid()}"
        print(f"{'build':10} {'wall s':>8}")
        if not args.skip_cold:
            cold = timed_build(tag, tmp / "cold", cache=tmp / "cache", no_cache=True)
            print(f"{'cold':10} {cold:8.1f}")
        warm = timed_build(tag, tmp / "image", cache=None, no_cache=False)
        print(f"{'warm':10} {warm:8.1f}", flush=True)
        built = build(REPO, tag, tmp / "image")
        layer_table(built)
        try:
            first_checks(built, tmp, args.minutes)
        finally:
            subprocess.run(["buildah", "rmi", tag], capture_output=True, check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
