"""Actions a worker runs for remediation: registry, command, http, ssh, platform, routing."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from typing import Any, ClassVar, Literal

import httpx
import pytest
from pydantic import BaseModel, ValidationError

from watchkeeper.document.platforms import PlatformConfig
from watchkeeper.infra.providers import Machine, MachineSpec
from watchkeeper.jobs.payloads import ActionPayload
from watchkeeper.plugins import ACTIONS, PROVIDERS
from watchkeeper.results import CheckOutcome, CheckState
from watchkeeper.transport.protocol import Job
from watchkeeper.worker.actions import (
    Actions,
    ActionTarget,
    HttpActionRunner,
)
from watchkeeper.worker.executors import Executors
from watchkeeper.worker.runner import job_runner

TARGET = ActionTarget(host="web1", service="http", address="127.0.0.1", timeout=5.0)


@pytest.fixture
async def actions() -> AsyncIterator[Actions]:
    shared = Actions()
    yield shared
    await shared.aclose()


def test_every_document_action_kind_has_an_action() -> None:
    assert set(ACTIONS) >= {"ssh", "command", "http", "platform"}


async def test_command_success_failure_and_environment(actions: Actions) -> None:
    script = "import os,sys; print('restarted', os.environ['WATCHKEEPER_HOST'], " \
             "os.environ['WATCHKEEPER_SERVICE']); sys.exit(int(sys.argv[1]))"  # fmt: skip
    good = await actions.run({"kind": "command", "command": [sys.executable, "-c", script, "0"]},
                             TARGET)  # fmt: skip
    assert (good.state, good.output) == (CheckState.OK, "restarted web1 http")
    bad = await actions.run({"kind": "command", "command": [sys.executable, "-c", script, "1"]},
                            TARGET)  # fmt: skip
    assert bad.state is CheckState.CRITICAL
    assert bad.output == "COMMAND FAILED (exit status 1) - restarted web1 http"
    missing = await actions.run({"kind": "command", "command": ["/nonexistent/restart"]}, TARGET)
    assert missing.state is CheckState.CRITICAL
    assert missing.output.startswith("COMMAND FAILED - cannot run /nonexistent/restart")


async def test_command_timeout_fails(actions: Actions) -> None:
    slow = ActionTarget(host="web1", timeout=0.2)
    out = await actions.run({"kind": "command", "command": ["sleep", "30"]}, slow)
    assert (
        out.state is CheckState.CRITICAL and out.output == "COMMAND FAILED - timed out after 0.2s"
    )


async def test_unknown_and_invalid_actions_fail_without_raising(actions: Actions) -> None:
    unknown = await actions.run({"kind": "teleport"}, TARGET)
    assert (
        unknown.state is CheckState.CRITICAL and "unknown action kind 'teleport'" in unknown.output
    )
    invalid = await actions.run({"kind": "command", "command": []}, TARGET)
    assert invalid.state is CheckState.CRITICAL and "invalid command action" in invalid.output


async def test_http_posts_json_with_a_bearer_token_and_2xx_succeeds() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status = 202 if request.url.path == "/deploy" else 503
        return httpx.Response(status, text="accepted" if status == 202 else "busy")

    runner = HttpActionRunner(environ={"HOOK": "s3cret"}, transport=httpx.MockTransport(handler))
    actions = Actions(factories={"http": lambda: runner})
    spec = {"kind": "http", "url": "http://127.0.0.1:9/deploy", "body": {"restart": "nginx"},
            "bearer_token": "env:HOOK"}  # fmt: skip
    good = await actions.run(spec, TARGET)
    assert good.state is CheckState.OK
    assert good.output == "HTTP ACTION OK - POST http://127.0.0.1:9/deploy answered 202 Accepted"
    assert good.long_output == "accepted"
    assert seen[0].headers["authorization"] == "Bearer s3cret"
    assert json.loads(seen[0].content) == {"restart": "nginx"}
    bad = await actions.run({**spec, "url": "http://127.0.0.1:9/other"}, TARGET)
    assert bad.state is CheckState.CRITICAL and "503 Service Unavailable" in bad.output
    nosecret = await actions.run({**spec, "bearer_token": "env:MISSING"}, TARGET)
    assert nosecret.state is CheckState.CRITICAL and "MISSING is not set" in nosecret.output
    await actions.aclose()


async def test_http_refused_is_a_failure() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    actions = Actions(factories={"http": lambda: HttpActionRunner(
        transport=httpx.MockTransport(handler))})  # fmt: skip
    out = await actions.run({"kind": "http", "url": "http://127.0.0.1:9/x"}, TARGET)
    assert out.state is CheckState.CRITICAL and "connection refused" in out.output
    await actions.aclose()


class FakeSsh:
    """Stands in for the ssh executor: answers by command."""

    kind: ClassVar[str] = "ssh"
    Config: ClassVar[type[BaseModel]] = BaseModel

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, Any], str, float]] = []

    async def run(self, check: dict[str, Any], *, address: str, timeout: float) -> CheckOutcome:  # noqa: ASYNC109
        self.calls.append((check, address, timeout))
        if check["command"][0] == "ok":
            return CheckOutcome(state=CheckState.OK, output="nginx restarted")
        return CheckOutcome(state=CheckState.CRITICAL, output="Job for nginx failed")

    async def aclose(self) -> None:
        """Holds no connections."""


async def test_ssh_runs_through_the_shared_ssh_executor_strictly() -> None:
    fake = FakeSsh()
    actions = Actions(Executors(factories={"ssh": lambda: fake}))  # type: ignore[dict-item]
    spec = {"kind": "ssh", "command": ["ok"], "key": "env:KEY", "user": "root"}
    good = await actions.run(spec, TARGET)
    assert (good.state, good.output) == (CheckState.OK, "nginx restarted")
    assert fake.calls[0] == (
        {"kind": "ssh", "command": ["ok"], "user": "root", "port": 22, "key": "env:KEY",
         "known_hosts": "strict"},
        "127.0.0.1",
        5.0,
    )  # fmt: skip
    bad = await actions.run({**spec, "command": ["fail"]}, TARGET)
    assert bad.state is CheckState.CRITICAL
    assert bad.output == "SSH ACTION FAILED (exit status 2) - Job for nginx failed"


class LabCloudPlatform(PlatformConfig):
    provider: Literal["testcloud"]


class LabCloud:
    """An in-memory platform: machines by cloud id, and every call it was asked."""

    kind: ClassVar[str] = "testcloud"
    Config: ClassVar[type[BaseModel]] = LabCloudPlatform
    capabilities: ClassVar[frozenset[str]] = frozenset(
        {"observe", "create", "destroy", "reboot", "start", "stop"}
    )
    machines: ClassVar[dict[str, Machine]] = {}
    asked: ClassVar[list[tuple[str, str]]] = []
    closed: ClassVar[int] = 0

    def __init__(self, platform: Mapping[str, Any]) -> None:
        self.platform = platform

    async def observe(self, owner: str) -> list[Machine]:
        return list(LabCloud.machines.values())

    async def create(self, spec: MachineSpec) -> Machine:
        made = Machine(cloud_id=f"i-{len(LabCloud.machines)}", resource=spec.resource,
                       slot=spec.slot, owner=spec.owner, op=spec.op, state="running",
                       size=spec.size)  # fmt: skip
        LabCloud.machines[made.cloud_id] = made
        LabCloud.asked.append(("create", made.cloud_id))
        return made

    async def destroy(self, machine: Machine) -> None:
        LabCloud.asked.append(("destroy", machine.cloud_id))
        del LabCloud.machines[machine.cloud_id]

    async def reboot(self, machine: Machine) -> None:
        LabCloud.asked.append(("reboot", machine.cloud_id))

    async def start(self, machine: Machine) -> None:
        LabCloud.asked.append(("start", machine.cloud_id))

    async def stop(self, machine: Machine) -> None:
        LabCloud.asked.append(("stop", machine.cloud_id))

    async def aclose(self) -> None:
        LabCloud.closed += 1


async def test_platform_actions_act_on_the_machine_of_ours_that_fills_the_slot(
    actions: Actions,
) -> None:
    platform = {"name": "eu", "provider": "testcloud", "zone": "core"}
    target = ActionTarget(host="web-1", address="10.0.0.1", platform=platform, owner="wkA")
    spec = {"kind": "platform", "platform": "eu", "operation": "reboot"}
    none = await actions.run(spec, target)
    assert none.state is CheckState.CRITICAL
    assert "no provider 'testcloud' (platform eu" in none.output
    LabCloud.machines = {
        "i-a": Machine(cloud_id="i-a", resource="web", slot="web-1", owner="wkA",
                       state="running", size="small"),
        # A lookalike: our resource and slot tags, another owner. Never touched.
        "i-b": Machine(cloud_id="i-b", resource="web", slot="web-2", owner="wkB",
                       state="running"),
    }  # fmt: skip
    LabCloud.asked = []
    PROVIDERS.register(LabCloud)
    try:
        done = await actions.run(spec, target)
        again = await actions.run(spec, target)
        foreign = await actions.run(spec, replace(target, host="web-2"))
        plain = await actions.run(spec, replace(target, host="db1"))
        swapped = await actions.run({**spec, "operation": "replace"}, target)
        ownerless = await actions.run(spec, replace(target, owner=""))
    finally:
        PROVIDERS.unregister("testcloud")
    assert done.state is again.state is CheckState.OK
    assert "reboot web-1 (i-a)" in done.output
    assert foreign.state is plain.state is CheckState.CRITICAL
    assert "no machine of ours fills web-2" in foreign.output
    assert "no machine of ours fills db1" in plain.output
    assert swapped.state is CheckState.OK
    assert "replaced web-1: i-a -> i-2" in swapped.output
    # Create before destroy, and nothing done to the lookalike.
    assert LabCloud.asked == [("reboot", "i-a"), ("reboot", "i-a"), ("create", "i-2"),
                              ("destroy", "i-a")]  # fmt: skip
    assert LabCloud.machines["i-2"].size == "small"
    assert "no owner id" in ownerless.output
    assert "testcloud" not in PROVIDERS
    closed = LabCloud.closed
    await actions.aclose()
    assert LabCloud.closed == closed + 1  # one provider per platform, made once, closed once
    missing = await actions.run(spec, ActionTarget(host="web1"))
    assert "was not sent with the job" in missing.output


async def test_the_job_runner_routes_action_jobs_to_actions() -> None:
    run = job_runner()
    job = Job(job_id="rem-1", zone="core", deadline=time.time() + 30,
              payload=ActionPayload(action={"kind": "command", "command": ["true"]},
                                    host="web1", address="127.0.0.1", timeout=5))  # fmt: skip
    out = await run(job)
    assert (out.state, out.output) == (CheckState.OK, "COMMAND OK")
    with pytest.raises(ValidationError):  # an action that is not an object never gets here
        Job.model_validate({**job.model_dump(), "payload": {"kind": "action", "action": "x"}})
    broken = job.model_copy(update={"payload": ActionPayload(action={"kind": "command"})})
    assert (await run(broken)).state is CheckState.CRITICAL
