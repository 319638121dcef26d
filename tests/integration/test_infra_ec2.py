"""Infrastructure end to end against moto_server: the manager of ``watchkeeper up`` with its
embedded worker provisions, scales, protects and repairs EC2 instances from the document.

The instances live in a moto subnet on 127.0.10.0/24, so the addresses the slots' hosts
get are loopback ones: the selector's services really run against them (``check_dummy``)
and no packet leaves the machine. Every assertion about the platform is read back from
moto with boto3, by instance id, the way an operator would check AWS.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.faultproxy import FaultProxy
from tests.fixtures.moto import Moto
from tests.fixtures.up import RunningManagers
from tests.waiting import wait_until
from watchkeeper.runtime import Manager
from watchkeeper.transport import protocol

CHECK_DUMMY = "/usr/lib/nagios/plugins/check_dummy"
#: The platform's credentials, as the worker's environment holds them.
SECRET = "AKIAWKTEST:wk-secret-value-9f3c1d"

pytestmark = pytest.mark.skipif(
    not Path(CHECK_DUMMY).exists(), reason="monitoring-plugins (check_dummy) not installed"
)


def document(endpoint: str, subnet: str, **resource: Any) -> dict[str, Any]:
    spec = {"name": "web", "platform": "cloud", "count": 3, "size": "t3.small",
            "image": "ami-12345678", "labels": {"role": "web"}, "confirm": [],
            "options": {"subnet": subnet}, **resource}  # fmt: skip
    return {
        "schema": "watchkeeper/v1",
        "zones": [{"name": "eu"}],
        "platforms": [{"name": "cloud", "provider": "ec2", "zone": "eu",
                       "credentials": "env:WK_TEST_AWS", "poll": "1s",
                       "options": {"region": "eu-west-1", "endpoint": endpoint,
                                   "max_attempts": 1}}],
        "infrastructure": [spec],
        "services": [{"name": "alive", "hosts": {"labels": {"role": "web"}},
                      "interval": "1s", "retry_interval": "1s", "max_attempts": 1,
                      "check": {"kind": "plugin", "command": [CHECK_DUMMY, "0", "alive"]}}],
    }  # fmt: skip


@dataclass
class Cloud:
    """The manager under test, the moto it provisions on, and how to look at both."""

    manager: Manager
    moto: Moto
    source: Path
    subnet: str
    endpoint: str
    api: httpx.AsyncClient

    def write(self, **resource: Any) -> None:
        self.source.write_text(json.dumps(document(self.endpoint, self.subnet, **resource)))

    def instances(self, *, live: bool = True) -> dict[str, dict[str, Any]]:
        """Instance id -> instance, of everything tagged with our resource."""
        ec2 = self.moto.client()
        found = {}
        for reservation in ec2.describe_instances(
            Filters=[{"Name": "tag:watchkeeper:resource", "Values": ["web"]}]
        )["Reservations"]:
            for instance in reservation["Instances"]:
                if live and instance["State"]["Name"] in ("terminated", "shutting-down"):
                    continue
                found[instance["InstanceId"]] = instance
        return found

    def slots(self) -> dict[str, str]:
        """Slot -> instance id, of the live instances."""
        return {tag(i, "watchkeeper:slot"): iid for iid, i in self.instances().items()}

    async def get(self, path: str) -> Any:
        reply = await self.api.get(path)
        assert reply.status_code == 200, reply.text
        return reply.json()

    async def post(self, path: str, body: Any = None) -> httpx.Response:
        return await self.api.post(path, json=body if body is not None else {})

    def check(self, key: str) -> tuple[str, str]:
        status = self.manager.runner.engine.statuses.get(key) if self.manager.runner else None
        if status is None or status.pending:
            return "PENDING", ""
        return status.state.name, status.output


def tag(instance: dict[str, Any], key: str) -> str:
    return next((t["Value"] for t in instance.get("Tags", []) if t["Key"] == key), "")


def make_subnet(moto: Moto) -> str:
    """A subnet on loopback addresses: the instances' checks never leave the machine."""
    ec2 = moto.client()
    vpc = ec2.create_vpc(CidrBlock="127.0.0.0/16")["Vpc"]["VpcId"]
    return str(ec2.create_subnet(VpcId=vpc, CidrBlock="127.0.10.0/24")["Subnet"]["SubnetId"])


@pytest.fixture
def subnet(moto: Moto) -> str:
    return make_subnet(moto)


@pytest.fixture
async def start(
    tmp_path: Path, moto: Moto, subnet: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Callable[..., Any]]:
    """Start the manager of ``watchkeeper up`` on the document (resource overrides as
    keyword arguments); stopped, and its tasks awaited, at the end of the test."""
    monkeypatch.setenv("WK_TEST_AWS", SECRET)
    managers = RunningManagers()

    async def start_(endpoint: str | None = None, **resource: Any) -> Cloud:
        source = tmp_path / "doc.json"
        cloud_endpoint = endpoint or moto.url
        source.write_text(json.dumps(document(cloud_endpoint, subnet, **resource)))
        manager, api = await managers.start(source, tmp_path / "data")
        return Cloud(manager, moto, source, subnet, cloud_endpoint, api)

    yield start_
    await managers.stop_all()


async def test_count_scale_down_and_drift_end_to_end(start: Callable[..., Any]) -> None:
    cloud: Cloud = await start()
    # count 3: exactly three instances, tagged owner, resource and slot.
    await wait_until(lambda: len(cloud.instances()) == 3, within=30, what="3 instances")
    instances = cloud.instances()
    owners = {tag(i, "watchkeeper:owner") for i in instances.values()}
    assert len(owners) == 1 and owners != {""}
    assert sorted(cloud.slots()) == ["web-0", "web-1", "web-2"]
    # ... that appear as hosts with moto's addresses and the resource's labels ...
    addresses = {tag(i, "watchkeeper:slot"): i["PrivateIpAddress"] for i in instances.values()}

    async def hosts_have_addresses() -> bool:
        hosts = {h["name"]: h for h in (await cloud.get("/hosts?limit=100"))["items"]}
        return all(hosts.get(s, {}).get("address") == a for s, a in addresses.items())

    await wait_until(hosts_have_addresses, within=20, what="slot hosts with their addresses")
    detail = await cloud.get("/hosts/web-1")
    assert detail["labels"]["role"] == "web"
    # ... and get the selector's service, which runs against them.
    for slot in addresses:
        await wait_until(lambda s=slot: cloud.check(f"{s}!alive")[0] == "OK", within=20,
                         what=f"{slot}!alive OK")  # fmt: skip
    await wait_until(lambda: cloud.check("infra:web") == ("OK", "3/3 converged"), within=20,
                     what="infra:web OK, 3/3 converged")  # fmt: skip

    # 3 -> 2 destroys exactly the highest slot; nothing else changes.
    before = cloud.slots()
    cloud.write(count=2)
    await wait_until(lambda: len(cloud.instances()) == 2, within=30, what="2 instances")
    assert cloud.slots() == {k: v for k, v in before.items() if k != "web-2"}

    # Out-of-band stop: seen within a poll as drift, then repaired.
    cloud.moto.client().stop_instances(InstanceIds=[before["web-1"]])
    await wait_until(lambda: "web-1 stopped" in cloud.check("infra:web")[1]
                     or cloud.instances()[before["web-1"]]["State"]["Name"] == "running",
                     within=20, what="drift seen or repaired")  # fmt: skip
    await wait_until(
        lambda: cloud.instances()[before["web-1"]]["State"]["Name"] == "running",
        within=20, what="web-1 started again",
    )  # fmt: skip

    async def history_shows_both() -> bool:  # states are saved in batches
        items = (await cloud.get("/checks/infra:web/history"))["items"]
        states = [(e.get("state"), str(e.get("output"))) for e in items]
        return any(st == "WARNING" and "web-1 stopped out of band" in out
                   for st, out in states) and states[0][0] == "OK"  # fmt: skip

    await wait_until(history_shows_both, within=20, what="the history: drift, then OK")

    # Out-of-band terminate: the slot is made again, under the same name.
    cloud.moto.client().terminate_instances(InstanceIds=[before["web-0"]])
    await wait_until(
        lambda: cloud.slots().get("web-0") not in (None, before["web-0"]),
        within=30, what="web-0 recreated",
    )  # fmt: skip
    assert sorted(cloud.slots()) == ["web-0", "web-1"]
    operations = (await cloud.get("/infra/operations?limit=100"))["items"]
    reasons = [op["reason"] for op in operations]
    assert "-web-2: count 2" in reasons
    assert "start web-1: stopped out of band" in reasons


async def test_protection_outlives_the_document(start: Callable[..., Any]) -> None:
    cloud: Cloud = await start(count=2, protect=True)
    await wait_until(lambda: len(cloud.instances()) == 2, within=30, what="2 instances")
    ids = cloud.slots()
    ec2 = cloud.moto.client()

    def guarded(iid: str) -> bool:
        attr = ec2.describe_instance_attribute(InstanceId=iid, Attribute="disableApiTermination")
        return bool(attr["DisableApiTermination"]["Value"])

    await wait_until(lambda: all(guarded(i) for i in ids.values()), within=20,
                     what="the platform's termination guard set")  # fmt: skip
    # A later document drops `protect` and a slot: the protected machine stays.
    cloud.write(count=1)

    async def refused() -> bool:
        plans = await cloud.get("/infra/plan")
        return any("is protected" in r["reason"] for p in plans["plans"] for r in p["refusals"])

    await wait_until(refused, within=20, what="the destroy refused as protected")
    assert cloud.slots() == ids
    # An operator lifts it; then the plan takes the slot away.
    reply = await cloud.post("/infra/unprotect", {"target": "web-1"})
    assert reply.status_code == 200, reply.text
    await wait_until(lambda: sorted(cloud.slots()) == ["web-0"], within=30, what="web-1 gone")
    assert cloud.slots()["web-0"] == ids["web-0"]


async def test_destroys_wait_for_an_operator(start: Callable[..., Any]) -> None:
    cloud: Cloud = await start(count=2, confirm=["destroy"])
    await wait_until(lambda: len(cloud.instances()) == 2, within=30, what="2 instances")
    cloud.write(count=1, confirm=["destroy"])

    async def pending() -> list[dict[str, Any]]:
        items = (await cloud.get("/infra/operations?state=pending"))["items"]
        return [op for op in items if op["op"] == "destroy"]

    await wait_until(pending, within=20, what="a pending destroy")
    # Several polls later it still waits, and so does the instance.
    observations = (await cloud.get("/infra/platforms"))["items"][0]["observations"]
    await wait_until(
        lambda: _observations(cloud) >= observations + 2, within=20, what="two more polls"
    )
    assert len(cloud.instances()) == 2
    (job,) = await pending()
    reply = await cloud.post(f"/infra/operations/{job['id']}/confirm")
    assert reply.status_code == 200, reply.text
    await wait_until(lambda: len(cloud.instances()) == 1, within=30, what="destroyed")

    async def recorded() -> bool:  # the worker's result reaches the journal after moto acts
        return (await cloud.get(f"/infra/operations/{job['id']}"))["state"] == "succeeded"

    await wait_until(recorded, within=20, what="the destroy recorded as succeeded")
    done = await cloud.get(f"/infra/operations/{job['id']}")
    assert done["decided_by"]


def _observations(cloud: Cloud) -> int:
    states = cloud.manager.stages.infra.platform_states()
    inventory = states["cloud"].inventory
    return inventory.observations if inventory else 0


async def test_an_empty_observation_creates_nothing(start: Callable[..., Any]) -> None:
    cloud: Cloud = await start(count=2)
    await wait_until(lambda: len(cloud.instances()) == 2, within=30, what="2 instances")
    await wait_until(lambda: cloud.check("infra:web")[0] == "OK", within=20, what="OK")
    cloud.moto.reset()  # the platform forgets everything: 0 observed of 2 known
    seen = _observations(cloud)
    await wait_until(lambda: _observations(cloud) >= seen + 3, within=20, what="three polls")
    platform = (await cloud.get("/infra/platforms"))["items"][0]
    assert platform["state"] == "UNKNOWN"
    assert "observed 0 of 2" in platform["reason"]
    assert cloud.instances() == {}
    await wait_until(lambda: cloud.check("infra:web")[0] == "UNKNOWN", within=20,
                     what="infra:web UNKNOWN")  # fmt: skip
    # An operator says the platform really is empty: then it is provisioned again (in a
    # new subnet: the reset took the old one too).
    cloud.subnet = make_subnet(cloud.moto)
    cloud.write(count=2)
    reply = await cloud.post("/infra/platforms/cloud/accept")
    assert reply.status_code == 200, reply.text
    await wait_until(lambda: len(cloud.instances()) == 2, within=30, what="2 again")


async def test_throttling_fails_visibly_and_still_ends_with_exactly_three(
    start: Callable[..., Any], fault_proxy: FaultProxy
) -> None:
    fault_proxy.arm("throttle", count=1_000_000, after=0)
    cloud: Cloud = await start(endpoint=fault_proxy.url)
    await wait_until(lambda: cloud.check("infra:web")[0] == "UNKNOWN", within=20,
                     what="a throttled observation is UNKNOWN")  # fmt: skip
    assert "RequestLimitExceeded" in cloud.check("infra:web")[1]
    # Observations get through, creates do not: the apply fails, CRITICAL with the code.
    fault_proxy.arm("throttle", count=1_000_000, only="RunInstances")
    await wait_until(lambda: cloud.check("infra:web")[0] == "CRITICAL", within=30,
                     what="failed applies are CRITICAL")  # fmt: skip
    assert "RequestLimitExceeded" in cloud.check("infra:web")[1]
    assert cloud.instances() == {}
    # The slots' checks wait for machines: PENDING, not failing, nobody paged.
    runner = cloud.manager.runner
    assert runner is not None
    await wait_until(lambda: runner.engine.statuses["web-0!alive"].not_run
                     == "not provisioned yet", within=20, what="web-0's check waits")  # fmt: skip
    assert runner.engine.statuses["web-0!alive"].pending
    fault_proxy.arm("off")
    await cloud.post("/infra/apply")  # the operator closes the breaker at once
    await wait_until(lambda: len(cloud.instances()) == 3, within=30, what="3 instances")
    await wait_until(lambda: cloud.check("infra:web")[0] == "OK", within=20, what="OK")
    assert len(cloud.instances()) == 3


async def test_the_secret_never_leaves_the_worker(
    start: Callable[..., Any],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    frames: list[bytes] = []
    encode = protocol.encode

    def capture(message: Any) -> bytes:  # every frame either side sends
        frame = encode(message)
        frames.append(frame)
        return frame

    monkeypatch.setattr(protocol, "encode", capture)
    cloud: Cloud = await start(count=1)
    await wait_until(lambda: len(cloud.instances()) == 1, within=30, what="1 instance")
    await wait_until(lambda: cloud.check("infra:web")[0] == "OK", within=20, what="OK")
    answers = [
        json.dumps(await cloud.get(path))
        for path in ("/infra/platforms", "/infra/resources", "/infra/plan",
                     "/infra/operations?limit=1000", "/hosts/web-0", "/checks?limit=1000",
                     "/config/current")
    ]  # fmt: skip
    parts = SECRET.split(":")
    infra_frames = [f for f in frames if b'"kind":"infra"' in f]
    assert infra_frames, "no infra job was captured"
    assert any(b"env:WK_TEST_AWS" in f for f in infra_frames)  # the reference travels
    blobs = {
        "job frames": b"".join(frames).decode("latin-1"),
        "API answers": "\n".join(answers),
        "logs": caplog.text,
        "database": b"".join(p.read_bytes() for p in (tmp_path / "data").glob("*.db*")).decode(
            "latin-1"
        ),
    }
    for where, blob in blobs.items():
        for part in parts:
            assert part not in blob, f"the credential shows in the {where}"
