"""A check kind installed as a separate package validates, is in the schema, and runs.

The package is the worked example of docs/plugins.md, taken from the doc itself (so the
doc cannot drift from what works): its module and its entry point, installed as a
``dist-info`` directory on ``PYTHONPATH`` of a fresh interpreter, as pip would leave it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"


def _block(language: str, first_line: str) -> str:
    for body in re.findall(rf"```{language}\n(.*?)```", DOCS.read_text(), flags=re.S):
        if body.startswith(first_line):
            return str(body)
    raise AssertionError(f"docs/plugins.md has no {language} block starting {first_line!r}")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("site")
    package = root / "wk_echo"
    package.mkdir()
    (package / "__init__.py").write_text(_block("python", "# wk_echo/__init__.py"))
    points = tomllib.loads(_block("toml", "# the package's pyproject.toml"))
    dist = root / "wk_echo-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: wk-echo\nVersion: 0.1\n")
    lines = []
    for group, entries in points["project"]["entry-points"].items():
        lines.append(f"[{group}]")
        lines.extend(f"{name} = {value}" for name, value in entries.items())
    (dist / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return root


def run(site: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), *sys.path])}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, input=stdin, timeout=60
    )


def document(check: dict[str, object]) -> str:
    return json.dumps(
        {
            "schema": "watchkeeper/v1",
            "zones": [{"name": "core"}],
            "hosts": [{"name": "web1", "address": "127.0.0.1", "zone": "core"}],
            "services": [{"name": "greeting", "hosts": ["web1"], "check": check}],
        }
    )


def test_a_document_using_the_kind_validates_and_a_bad_field_is_named(site: Path) -> None:
    good = run(site, "-m", "watchkeeper", "validate", "-", stdin=document(
        {"kind": "echo", "text": "hello"}
    ))  # fmt: skip
    assert good.returncode == 0, good.stderr + good.stdout
    bad = run(site, "-m", "watchkeeper", "validate", "--format", "json", "-", stdin=document(
        {"kind": "echo", "txet": "hello"}
    ))  # fmt: skip
    assert bad.returncode == 1
    pointers = {p["pointer"]: p["message"] for p in json.loads(bad.stdout)["errors"]}
    assert "did you mean 'text'" in pointers["/services/0/check/txet"]
    without = run(site, "-m", "watchkeeper", "validate", "-", stdin=document(
        {"kind": "echo", "text": "hello"}
    ).replace("echo", "echoo"))  # fmt: skip
    assert without.returncode == 1 and "'echo'" in without.stdout  # the kind is known by name


def test_the_json_schema_has_the_kind(site: Path) -> None:
    schema = json.loads(run(site, "-m", "watchkeeper", "schema").stdout)
    assert "EchoCheck" in schema["$defs"]
    assert schema["$defs"]["EchoCheck"]["properties"]["kind"]["const"] == "echo"
    plain = json.loads(run(Path("/nonexistent"), "-m", "watchkeeper", "schema").stdout)
    assert "EchoCheck" not in plain["$defs"]  # not installed: not in the document


def test_a_worker_runs_it(site: Path) -> None:
    script = """
import asyncio, time
from watchkeeper.jobs.payloads import CheckPayload
from watchkeeper.transport.protocol import Job
from watchkeeper.worker.runner import job_runner

job = Job(job_id="j1", zone="core", deadline=time.time() + 30,
          payload=CheckPayload(key="web1!greeting", check={"kind": "echo", "text": "hello"}))
outcome = asyncio.run(job_runner()(job))
print(outcome.state.name, outcome.output, outcome.metrics[0].label, outcome.metrics[0].value)
"""
    ran = run(site, "-c", script)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["OK", "ECHO", "OK", "-", "hello", "length", "5"]
