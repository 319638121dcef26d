"""The worker's side of infrastructure against moto: infra jobs as the worker runs them.

`InfraRunner` is the last guard before a platform call: it looks the machine up afresh,
refuses one without our owner tag and the destroy of a protected one, resizes by stopping,
waiting and starting, adopts only machines that have no owner, and keeps the secret out of
what it returns.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.fixtures.moto import Moto
from watchkeeper.infra.providers.base import TAG_OWNER, TAG_RESOURCE, TAG_SLOT
from watchkeeper.jobs.payloads import InfraPayload
from watchkeeper.results import CheckState
from watchkeeper.worker.infra import InfraRunner

OWNER = "wkworker0000001"
SECRET = "AKIAWORKER:worker-secret-4c1b"
IMAGE = "ami-12345678"


def platform(moto: Moto) -> dict[str, Any]:
    return {"name": "cloud", "provider": "ec2", "zone": "eu", "credentials": "env:WK_TEST_AWS",
            "limits": {"calls_per_second": 200.0},
            "options": {"region": "eu-west-1", "endpoint": moto.url}}  # fmt: skip


@pytest.fixture
async def runner(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("WK_TEST_AWS", SECRET)
    made = InfraRunner()
    yield made
    await made.aclose()


def job(moto: Moto, op: str, **fields: Any) -> InfraPayload:
    return InfraPayload(op=op, platform=platform(moto), owner=OWNER, resource="web", **fields)  # type: ignore[arg-type]


def instance(moto: Moto, cloud_id: str) -> dict[str, Any]:
    reply = moto.client().describe_instances(InstanceIds=[cloud_id])
    found: dict[str, Any] = reply["Reservations"][0]["Instances"][0]
    return found


async def test_create_resize_and_destroy(moto: Moto, runner: InfraRunner) -> None:
    made = await runner.run(
        job(moto, "create", slot="web-0", op_id="inf-1", size="t3.small", image=IMAGE)
    )
    assert made.state is CheckState.OK, made.output
    assert made.data is not None
    cloud_id = made.data["machine"]["cloud_id"]
    resized = await runner.run(job(moto, "resize", slot="web-0", cloud_id=cloud_id,
                                   size="t3.large"))  # fmt: skip
    assert resized.state is CheckState.OK, resized.output
    now = instance(moto, cloud_id)
    # Stopped to resize, started again: the size changed and the machine runs.
    assert (now["InstanceType"], now["State"]["Name"]) == ("t3.large", "running")
    observed = await runner.run(job(moto, "observe"))
    assert observed.data is not None
    [machine] = observed.data["machines"]
    assert (machine["slot"], machine["size"], machine["owner"]) == ("web-0", "t3.large", OWNER)
    gone = await runner.run(job(moto, "destroy", slot="web-0", cloud_id=cloud_id))
    assert gone.state is CheckState.OK, gone.output
    assert instance(moto, cloud_id)["State"]["Name"] in ("shutting-down", "terminated")
    again = await runner.run(job(moto, "destroy", slot="web-0", cloud_id=cloud_id))
    assert again.state is CheckState.CRITICAL and "is not on the platform" in again.output


async def test_a_machine_without_our_owner_tag_is_not_changed_but_can_be_adopted(
    moto: Moto, runner: InfraRunner
) -> None:
    tags = [{"Key": TAG_RESOURCE, "Value": "web"}, {"Key": TAG_SLOT, "Value": "web-1"}]
    reply = moto.client().run_instances(
        ImageId=IMAGE, InstanceType="t3.small", MinCount=1, MaxCount=1,
        TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
    )  # fmt: skip
    stray = reply["Instances"][0]["InstanceId"]
    for op in ("destroy", "stop", "resize"):
        refused = await runner.run(job(moto, op, slot="web-1", cloud_id=stray, size="t3.large"))
        assert refused.state is CheckState.CRITICAL
        assert "not ours to change" in refused.output
    assert instance(moto, stray)["State"]["Name"] == "running"
    adopted = await runner.run(job(moto, "adopt", slot="web-1", cloud_id=stray))
    assert adopted.state is CheckState.OK, adopted.output
    owner = {t["Key"]: t["Value"] for t in instance(moto, stray)["Tags"]}[TAG_OWNER]
    assert owner == OWNER
    # Now ours, adopting again is refused: it has an owner.
    twice = await runner.run(job(moto, "adopt", slot="web-1", cloud_id=stray))
    assert twice.state is CheckState.CRITICAL and "already has an owner tag" in twice.output


async def test_a_protected_machine_is_not_destroyed_until_unprotected(
    moto: Moto, runner: InfraRunner
) -> None:
    made = await runner.run(
        job(moto, "create", slot="web-0", op_id="inf-2", size="t3.small", image=IMAGE,
            protect=True)
    )  # fmt: skip
    assert made.data is not None
    cloud_id = made.data["machine"]["cloud_id"]
    refused = await runner.run(job(moto, "destroy", slot="web-0", cloud_id=cloud_id))
    assert refused.state is CheckState.CRITICAL and "protected" in refused.output
    assert instance(moto, cloud_id)["State"]["Name"] == "running"
    lifted = await runner.run(job(moto, "unprotect", slot="web-0", cloud_id=cloud_id))
    assert lifted.state is CheckState.OK, lifted.output
    gone = await runner.run(job(moto, "destroy", slot="web-0", cloud_id=cloud_id))
    assert gone.state is CheckState.OK, gone.output


async def test_the_secret_is_scrubbed_from_what_the_worker_returns(
    moto: Moto, runner: InfraRunner
) -> None:
    # An image id that carries the secret, echoed back by the platform: nothing of it leaves.
    echoed = await runner.run(
        job(moto, "create", slot="web-0", op_id="inf-3", size="t3.small",
            image=f"ami-{SECRET.split(':')[1]}")
    )  # fmt: skip
    text = json.dumps({"output": echoed.output, "data": echoed.data})
    for part in SECRET.split(":"):
        assert part not in text
    assert "***" in text
