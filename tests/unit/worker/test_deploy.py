"""The deploy worker's side of a job, without a host: the spec's errors, the engine's
failures (a fake engine process), the outcome's words, secrets scrubbed."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from tests.waiting import wait_until
from watchkeeper.jobs.payloads import DeployPayload
from watchkeeper.results import CheckState
from watchkeeper.worker.deploy import DeployRunner

KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END"


def payload(mode: str = "check", **fields: Any) -> DeployPayload:
    deployment = {"name": "base", "hosts": ["a"], "ssh": {"key": "env:WK_UNIT_DEPLOY_KEY"},
                  "files": [{"path": "/etc/motd", "content": "hi\n"}], **fields}  # fmt: skip
    return DeployPayload(
        mode="apply" if mode == "apply" else "check", deployment=deployment, host="a",
        address="10.0.0.1", zone="dc1", agent_version="0.1.0", manager_fingerprint="SHA256:m",
    )  # fmt: skip


def fake_engine(tmp_path: Path, body: str) -> str:
    """An executable standing in for python: it reads the spec and does ``body``."""
    path = tmp_path / "fake-python"
    path.write_text(f"#!/bin/sh\ncat > {tmp_path}/spec.json\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WK_UNIT_DEPLOY_KEY", KEY)


def report(**fields: Any) -> str:
    body = {"ok": True, "error": "", "error_kind": "", "changes": [], "diffs": {}, "facts": {}}
    return "printf '%s' '" + json.dumps(body | fields) + "'"


async def test_a_plan_names_each_change_and_the_key_is_a_private_file(tmp_path: Path) -> None:
    python = fake_engine(
        tmp_path, "stat -c %a \"$(sed 's/.*\"key_file\": \"\\([^\"]*\\)\".*/\\1/' "
        f"{tmp_path}/spec.json)\" > {tmp_path}/mode; "
        + report(changes=["change /etc/motd", "install agent 0.1.0"],
                 diffs={"change /etc/motd": "--- /etc/motd\n+++ /etc/motd\n"}),
    )  # fmt: skip
    runner = DeployRunner(state_dir=tmp_path / "state", python=python)
    outcome = await runner.run(payload())
    assert outcome.state is CheckState.OK
    assert outcome.output == (
        "DEPLOY CHECK OK - 2 changes: would change /etc/motd; would install agent 0.1.0"
    )
    assert outcome.long_output.startswith("--- /etc/motd")
    spec = json.loads((tmp_path / "spec.json").read_text())
    assert (spec["dry"], spec["policy"], spec["address"]) == (True, "strict", "10.0.0.1")
    assert (tmp_path / "mode").read_text().strip() == "600"
    assert not Path(spec["key_file"]).exists()  # noqa: ASYNC240 (removed when the job ended)
    # known_hosts beside the worker's key by default, private.
    known = Path(spec["known_hosts"])
    assert known == tmp_path / "state" / "known_hosts"
    modes = [known.stat().st_mode, known.parent.stat().st_mode]  # noqa: ASYNC240
    assert [mode & 0o077 for mode in modes] == [0, 0]


async def test_new_hosts_accept_is_accept_new(tmp_path: Path) -> None:
    runner = DeployRunner(state_dir=tmp_path, python=fake_engine(tmp_path, report()))
    outcome = await runner.run(
        payload(ssh={"key": "env:WK_UNIT_DEPLOY_KEY", "new_hosts": "accept"})
    )
    assert outcome.output == "DEPLOY CHECK OK - in sync, nothing to change"
    assert json.loads((tmp_path / "spec.json").read_text())["policy"] == "accept-new"


async def test_a_failure_is_critical_and_the_key_is_scrubbed(tmp_path: Path) -> None:
    line = KEY.splitlines()[1]
    python = fake_engine(tmp_path, report(ok=False, error_kind="auth", error=f"refused {line}"))
    outcome = await DeployRunner(state_dir=tmp_path, python=python).run(payload("apply"))
    assert outcome.state is CheckState.CRITICAL
    assert outcome.output == "DEPLOY APPLY FAILED - refused ***"
    assert outcome.data is not None and outcome.data["error_kind"] == "auth"
    assert line not in json.dumps(outcome.data)


async def test_an_engine_without_a_report_or_past_its_timeout(tmp_path: Path) -> None:
    broken = fake_engine(tmp_path, "echo 'Traceback: boom' >&2; exit 3")
    outcome = await DeployRunner(state_dir=tmp_path, python=broken).run(payload())
    assert (
        outcome.output
        == "DEPLOY CHECK FAILED - the engine exited 3 without a report: Traceback: boom"
    )
    hung = fake_engine(tmp_path, "sleep 30")
    runner = DeployRunner(state_dir=tmp_path, python=hung)
    outcome = await runner.run(payload().model_copy(update={"timeout": 0.3}))
    assert outcome.output == "DEPLOY CHECK FAILED - timed out after 0.3s"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"ssh": {"key": "env:WK_UNIT_UNSET"}}, "environment variable WK_UNIT_UNSET is not set"),
        ({"ssh": {"key": "env:WK_UNIT_DEPLOY_KEY", "known_hosts": "env:X"}},
         "ssh.known_hosts must be a file:/path"),
        ({"files": [{"path": "/etc/x", "template": "{{ nope }}"}]}, "files/0/template (/etc/x)"),
        ({"agent": {"manager": "m:4730"}}, "no wheelhouse of watchkeeper 0.1.0"),
        ({"packages": "nginx"}, "the deployment is not valid here: packages"),
    ],
)  # fmt: skip
async def test_a_bad_spec_fails_before_anything_connects(
    tmp_path: Path, fields: dict[str, Any], message: str
) -> None:
    python = fake_engine(tmp_path, f"touch {tmp_path}/ran")
    runner = DeployRunner(state_dir=tmp_path, python=python, wheels=tmp_path / "no-wheels")
    outcome = await runner.run(payload(**fields))
    assert outcome.state is CheckState.CRITICAL
    assert message in outcome.output
    assert not (tmp_path / "ran").exists()


async def test_a_cancelled_job_leaves_no_engine_running(tmp_path: Path) -> None:
    """The worker stops mid-deploy: the engine's whole process group goes with the job."""
    python = fake_engine(tmp_path, f"sleep 30 & echo $! > {tmp_path}/child; wait")
    task = asyncio.create_task(DeployRunner(state_dir=tmp_path, python=python).run(payload()))
    await wait_until(lambda: (tmp_path / "child").exists(), what="the engine started")
    await wait_until(lambda: (tmp_path / "child").read_text().strip() != "", what="its pid")
    child = int((tmp_path / "child").read_text())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_until(lambda: not _alive(child), what="the engine's child killed")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


async def test_an_agent_gets_every_manager_and_pin_its_deploy_worker_has(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for name in ("watchkeeper-0.1.0-py3-none-any.whl", "pip-24.0-py3-none-any.whl"):
        (wheels / name).write_bytes(b"")
    runner = DeployRunner(
        state_dir=tmp_path / "state",
        manager="m1:4730,m2:4731",
        fingerprints=("SHA256:other", "SHA256:m"),
        wheels=wheels,
        python=fake_engine(tmp_path, report()),
    )
    outcome = await runner.run(payload(agent={}))
    assert outcome.state is CheckState.OK, outcome.output
    env = json.loads((tmp_path / "spec.json").read_text())["agent"]["env"]
    assert "WATCHKEEPER_MANAGER=m1:4730,m2:4731\n" in env
    # The manager's own key first (the job says it), then the worker's other pins, once each.
    assert "WATCHKEEPER_MANAGER_FINGERPRINT=SHA256:m,SHA256:other\n" in env
