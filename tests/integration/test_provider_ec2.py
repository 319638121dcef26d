"""The ec2 provider against moto_server, with a fault proxy in between where it matters.

One moto_server serves the session, reset before each test. No test calls
``describe_images`` (slow on moto: seconds); AMI ids are made up, which moto accepts.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from tests.fixtures.listener import free_port
from watchkeeper.infra.providers.base import (
    TAG_OP,
    TAG_OWNER,
    TAG_PROTECT,
    TAG_RESOURCE,
    TAG_SLOT,
    Machine,
    MachineSpec,
    ProviderError,
)
from watchkeeper.infra.providers.ec2 import (
    Ec2Provider,
    TokenBucket,
    client_token,
    parse_credentials,
)
from watchkeeper.plugins import PROVIDERS

if TYPE_CHECKING:  # imported as plugins, below (importing them first defeats that)
    from tests.fixtures.faultproxy import FaultProxy
    from tests.fixtures.moto import Moto

pytest_plugins = ["tests.fixtures.moto", "tests.fixtures.faultproxy"]

REGION = "eu-west-1"

OWNER = "cluster-7f3a"
IMAGE = "ami-03cf127a"
KEY_ID, SECRET = "AKIDWATCHKEEPER4711", "s3cr3t/VALUE+never-shown"
#: The `make` fixture: an Ec2Provider on an endpoint, with options.
Make = Callable[..., Ec2Provider]


def platform(endpoint: str, **options: Any) -> dict[str, Any]:
    """An ec2 platform object as the manager sends it (credentials a reference)."""
    return {
        "name": "eu-cloud",
        "provider": "ec2",
        "zone": "eu",
        "credentials": "env:WK_TEST_AWS",
        "poll": "1m",
        "limits": {"calls_per_second": 200.0},
        "options": {"region": REGION, "endpoint": endpoint, **options},
    }


def spec(index: int, **kw: Any) -> MachineSpec:
    base: dict[str, Any] = {
        "owner": OWNER,
        "resource": "web",
        "slot": f"web-{index}",
        "index": index,
        "op": f"op-{index}",
        "size": "t3.small",
        "image": IMAGE,
    }
    return MachineSpec(**(base | kw))


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WK_TEST_AWS", f"{KEY_ID}:{SECRET}")


@pytest.fixture
async def make() -> AsyncIterator[Callable[..., Ec2Provider]]:
    """Providers for a test, each closed after it."""
    made: list[Ec2Provider] = []

    def factory(endpoint: str, **options: Any) -> Ec2Provider:
        made.append(Ec2Provider(platform(endpoint, **options)))
        return made[-1]

    yield factory
    for provider in made:
        await provider.aclose()


@pytest.fixture
def network(moto: Moto) -> dict[str, str]:
    """A VPC with subnet 10.213.9.0/24 and a security group, made by hand."""
    ec2 = moto.client()
    vpc = ec2.create_vpc(CidrBlock="10.213.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.213.9.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="web", Description="web", VpcId=vpc)["GroupId"]
    return {"vpc": vpc, "subnet": subnet, "group": group}


def lookalike(moto: Moto, **tags: str) -> str:
    """An instance made outside Watchkeeper, carrying only the tags given."""
    pairs = [{"Key": k, "Value": v} for k, v in tags.items()]
    tag_spec = [{"ResourceType": "instance", "Tags": pairs}]
    reply = moto.client().run_instances(
        ImageId=IMAGE, InstanceType="t3.micro", MinCount=1, MaxCount=1, TagSpecifications=tag_spec
    )
    return str(reply["Instances"][0]["InstanceId"])


def by_slot(machines: Any) -> dict[str, Machine]:
    return {m.slot: m for m in machines}


# --- create and observe -----------------------------------------------------------------


async def test_create_tags_names_and_places_three_machines(
    moto: Moto, network: dict[str, str], make: Make
) -> None:
    provider = make(moto.url)
    ips = ["10.213.9.50", "10.213.9.51", "10.213.9.52"]
    options = {
        "subnet": network["subnet"],
        "security_groups": [network["group"]],
        "key_name": "deploy",
        "private_ips": ips,
        "user_data": "#!/bin/sh\necho hello\n",
    }
    made = [await provider.create(spec(i, options=options)) for i in range(3)]

    for i, machine in enumerate(made):
        assert machine.cloud_id.startswith("i-")
        assert (machine.owner, machine.resource, machine.slot, machine.op) == (
            OWNER, "web", f"web-{i}", f"op-{i}",
        )  # fmt: skip
        assert (machine.size, machine.image, machine.address) == ("t3.small", IMAGE, ips[i])
        assert machine.state in ("pending", "running")
        assert machine.tags["Name"] == f"web-{i}"
        assert spec(i).tags().items() <= machine.tags.items()
        assert not machine.protected and machine.created_at is not None

    ec2 = moto.client()
    instance = ec2.describe_instances(InstanceIds=[made[0].cloud_id])["Reservations"][0][
        "Instances"
    ][0]
    assert instance["SubnetId"] == network["subnet"]
    assert [g["GroupId"] for g in instance["SecurityGroups"]] == [network["group"]]
    assert instance["KeyName"] == "deploy"
    tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
    assert tags == {
        TAG_OWNER: OWNER, TAG_RESOURCE: "web", TAG_SLOT: "web-0", TAG_OP: "op-0", "Name": "web-0",
    }  # fmt: skip
    user_data = ec2.describe_instance_attribute(InstanceId=made[0].cloud_id, Attribute="userData")
    assert base64.b64decode(user_data["UserData"]["Value"]) == b"#!/bin/sh\necho hello\n"

    other = lookalike(moto, **{TAG_RESOURCE: "web"})
    lookalike(moto, Name="not-ours-at-all")  # no resource tag: not seen
    seen = await provider.observe(OWNER)
    assert {m.cloud_id for m in seen} == {m.cloud_id for m in made} | {other}
    stranger = next(m for m in seen if m.cloud_id == other)
    assert (stranger.owner, stranger.slot, stranger.resource) == ("", "", "web")
    assert {m.slot: m.state for m in seen if m.owner} == dict.fromkeys(
        ("web-0", "web-1", "web-2"), "running"
    )
    assert by_slot(seen)["web-1"].address == "10.213.9.51"


async def test_observe_reads_every_page_or_fails(
    moto: Moto, fault_proxy: FaultProxy, make: Make
) -> None:
    ec2 = moto.client()
    tags = [{"ResourceType": "instance", "Tags": [{"Key": TAG_RESOURCE, "Value": "web"}]}]
    for _ in range(12):  # moto pages by reservation: one each
        ec2.run_instances(ImageId=IMAGE, MinCount=1, MaxCount=1, TagSpecifications=tags)
    provider = make(fault_proxy.url, max_attempts=1)
    provider.page_size = 5

    assert len(await provider.observe(OWNER)) == 12
    assert len(fault_proxy.requests) == 3  # three pages

    fault_proxy.arm("500", 1, after=1)  # the second page fails
    with pytest.raises(ProviderError) as failed:
        await provider.observe(OWNER)
    assert (failed.value.code, failed.value.retryable) == ("InternalError", True)


async def test_reset_leaves_nothing_to_observe(moto: Moto, make: Make) -> None:
    provider = make(moto.url)
    await provider.create(spec(0))
    assert len(await provider.observe(OWNER)) == 1
    moto.reset()
    assert await provider.observe(OWNER) == []


async def test_find_looks_one_instance_up_by_id(moto: Moto, make: Make) -> None:
    provider = make(moto.url)
    made = await provider.create(spec(0))
    found = await provider.find(made.cloud_id)
    assert found is not None
    assert (found.cloud_id, found.slot, found.owner) == (made.cloud_id, "web-0", OWNER)
    assert await provider.find("i-0123456789abcdef0") is None  # no such instance


async def test_create_refuses_options_it_cannot_use(
    moto: Moto, fault_proxy: FaultProxy, make: Make
) -> None:
    provider = make(fault_proxy.url)
    for bad in (
        spec(2, options={"private_ips": ["10.0.0.1"]}),
        spec(0, options={"subnets": "subnet-1"}),
        spec(0, image=None),
    ):
        with pytest.raises(ProviderError) as refused:
            await provider.create(bad)
        assert refused.value.code == "InvalidConfiguration"
    assert fault_proxy.requests == []  # refused before any call


# --- the lifecycle of one machine ---------------------------------------------------------


async def test_power_resize_protect_and_destroy(moto: Moto, make: Make) -> None:
    provider = make(moto.url)
    machine = await provider.create(spec(0))

    async def look() -> Machine:
        return by_slot(await provider.observe(OWNER))["web-0"]

    assert (await look()).state == "running"
    await provider.stop(machine)
    assert (await look()).state == "stopped"
    await provider.resize(machine, "t3.large")
    assert (await look()).size == "t3.large"
    await provider.start(machine)
    assert (await look()).state == "running"
    await provider.reboot(machine)
    assert (await look()).state == "running"

    await provider.protect(machine, True)
    protected = await look()
    assert protected.protected and protected.tags[TAG_PROTECT] == "true"
    with pytest.raises(ProviderError) as refused:
        await provider.destroy(machine)
    assert (refused.value.code, refused.value.retryable) == ("OperationNotPermitted", False)
    assert (await look()).state == "running"

    await provider.protect(machine, False)
    assert not (await look()).protected and TAG_PROTECT not in (await look()).tags
    await provider.destroy(machine)
    assert (await look()).state == "terminated"


async def test_a_machine_created_protected_cannot_be_destroyed(moto: Moto, make: Make) -> None:
    provider = make(moto.url)
    machine = await provider.create(spec(0, protect=True))
    assert machine.protected and machine.tags[TAG_PROTECT] == "true"
    with pytest.raises(ProviderError, match="OperationNotPermitted"):
        await provider.destroy(machine)


async def test_metrics_report_state_and_cloudwatch_averages(moto: Moto, make: Make) -> None:
    provider = make(moto.url)
    machine = await provider.create(spec(0))
    moto.client("cloudwatch").put_metric_data(
        Namespace="AWS/EC2",
        MetricData=[
            {
                "MetricName": "CPUUtilization",
                "Dimensions": [{"Name": "InstanceId", "Value": machine.cloud_id}],
                "Value": 42.5,
                "Unit": "Percent",
                "Timestamp": datetime.now(UTC) - timedelta(minutes=1),
            }
        ],
    )
    found = {m.label: m for m in await provider.metrics(machine, ["CPUUtilization", "NetworkIn"])}
    assert set(found) == {"state", "CPUUtilization"}  # NetworkIn has no data
    assert (found["state"].value, found["CPUUtilization"].value) == (1.0, 42.5)
    assert found["CPUUtilization"].uom == "%"

    await provider.stop(machine)
    assert [(m.label, m.value) for m in await provider.metrics(machine, [])] == [("state", 0.0)]
    gone = Machine(cloud_id="i-00000000000000000")
    assert [(m.label, m.value) for m in await provider.metrics(gone, [])] == [("state", 0.0)]


# --- failures -----------------------------------------------------------------------------


async def test_throttling_twice_recovers_within_the_attempts(
    fault_proxy: FaultProxy, make: Make
) -> None:
    provider = make(fault_proxy.url, max_attempts=3)
    fault_proxy.arm("throttle", 2)
    assert await provider.observe(OWNER) == []
    assert [r.fault for r in fault_proxy.requests] == ["throttle", "throttle", ""]


async def test_throttling_five_times_is_a_retryable_error(
    fault_proxy: FaultProxy, make: Make
) -> None:
    provider = make(fault_proxy.url, max_attempts=3)
    fault_proxy.arm("throttle", 5)
    with pytest.raises(ProviderError) as throttled:
        await provider.observe(OWNER)
    assert (throttled.value.code, throttled.value.retryable) == ("RequestLimitExceeded", True)
    assert fault_proxy.faulted == 3  # total_max_attempts counts calls


async def test_a_500_is_retried(fault_proxy: FaultProxy, make: Make) -> None:
    provider = make(fault_proxy.url, max_attempts=2)
    fault_proxy.arm("500", 1)
    await provider.create(spec(0))
    assert len(await provider.observe(OWNER)) == 1


async def test_a_hung_endpoint_is_a_retryable_timeout(fault_proxy: FaultProxy, make: Make) -> None:
    provider = make(fault_proxy.url, read_timeout=0.5, max_attempts=1)
    fault_proxy.arm("hang", 1)
    started = time.monotonic()
    with pytest.raises(ProviderError) as hung:
        await provider.observe(OWNER)
    assert (hung.value.code, hung.value.retryable) == ("ReadTimeoutError", True)
    assert time.monotonic() - started < 10


async def test_nothing_listening_is_a_retryable_error(make: Make) -> None:
    provider = make(f"http://127.0.0.1:{free_port()}", max_attempts=1)
    with pytest.raises(ProviderError) as refused:
        await provider.observe(OWNER)
    assert (refused.value.code, refused.value.retryable) == ("EndpointConnectionError", True)


# --- credentials --------------------------------------------------------------------------


async def test_credentials_come_from_the_reference_and_stay_out_of_errors(
    fault_proxy: FaultProxy, make: Make
) -> None:
    provider = make(fault_proxy.url, max_attempts=1)
    await provider.observe(OWNER)
    assert f"Credential={KEY_ID}/" in fault_proxy.requests[-1].headers["Authorization"]

    errors: list[ProviderError] = []
    fault_proxy.arm("throttle", 1)
    for attempt in (provider.observe(OWNER), provider.destroy(Machine(cloud_id="i-0123456789"))):
        with pytest.raises(ProviderError) as failed:
            await attempt
        errors.append(failed.value)
    unreachable = make(f"http://127.0.0.1:{free_port()}", max_attempts=1)
    with pytest.raises(ProviderError) as failed:
        await unreachable.observe(OWNER)
    errors.append(failed.value)
    assert [e.code for e in errors] == [
        "RequestLimitExceeded", "InvalidInstanceID.NotFound", "EndpointConnectionError",
    ]  # fmt: skip
    for error in errors:
        text = f"{error} {error!r} {error.__cause__} {error.__cause__!r}"
        assert KEY_ID not in text and SECRET not in text


async def test_json_credentials_carry_a_session_token(
    monkeypatch: pytest.MonkeyPatch, fault_proxy: FaultProxy, make: Make
) -> None:
    value = {"aws_access_key_id": "AKIDJSON", "aws_secret_access_key": "x"}
    value["aws_session_token"] = "tok"
    monkeypatch.setenv("WK_TEST_AWS", json.dumps(value))
    await make(fault_proxy.url).observe(OWNER)
    headers = fault_proxy.requests[-1].headers
    assert "Credential=AKIDJSON/" in headers["Authorization"]
    assert headers["X-Amz-Security-Token"] == "tok"


async def test_without_a_reference_the_default_chain_applies(
    monkeypatch: pytest.MonkeyPatch, fault_proxy: FaultProxy
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    provider = Ec2Provider({**platform(fault_proxy.url), "credentials": None})
    try:
        await provider.observe(OWNER)
    finally:
        await provider.aclose()
    assert "Credential=AKIDFROMENV/" in fault_proxy.requests[-1].headers["Authorization"]


async def test_unusable_credentials_are_named_not_shown(
    monkeypatch: pytest.MonkeyPatch, fault_proxy: FaultProxy, make: Make
) -> None:
    monkeypatch.setenv("WK_TEST_AWS", "just-one-opaque-s3cr3t")
    with pytest.raises(ProviderError) as bad:
        await make(fault_proxy.url).observe(OWNER)
    assert bad.value.code == "InvalidCredentials" and "env:WK_TEST_AWS" in bad.value.message
    assert "opaque" not in str(bad.value)
    monkeypatch.delenv("WK_TEST_AWS")
    with pytest.raises(ProviderError) as unset:
        await make(fault_proxy.url).observe(OWNER)
    assert unset.value.code == "SecretError" and "WK_TEST_AWS" in unset.value.message
    assert fault_proxy.requests == []


# --- without moto ---------------------------------------------------------------------------


def test_the_provider_is_registered_and_checks_its_platform() -> None:
    assert PROVIDERS.get("ec2") is Ec2Provider
    with pytest.raises(ProviderError) as invalid:
        Ec2Provider({**platform("ftp://nowhere"), "options": {"endpoint": "ftp://x"}})
    assert invalid.value.code == "InvalidConfiguration"
    assert "options.region" in invalid.value.message and "options.endpoint" in invalid.value.message


def test_credential_formats() -> None:
    assert parse_credentials("AKID:se:cret") == {
        "aws_access_key_id": "AKID",
        "aws_secret_access_key": "se:cret",
    }
    assert parse_credentials('{"aws_access_key_id": "A", "aws_secret_access_key": "B"}') == {
        "aws_access_key_id": "A",
        "aws_secret_access_key": "B",
    }
    for bad in ("AKID", ":x", "AKID:", "{", "[]", '{"aws_access_key_id": "A"}'):
        assert parse_credentials(bad) is None


def test_client_tokens_fit_in_64_characters() -> None:
    assert client_token("op-1") == "op-1"
    long = client_token("x" * 65)
    assert len(long) == 64 and long == client_token("x" * 65) != client_token("x" * 66)


async def test_the_token_bucket_paces_calls() -> None:
    now = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(2.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(6):
        await bucket.acquire()
    assert slept == [0.5, 0.5, 0.5, 0.5]  # a burst of 2, then one every half second
    assert now[0] == pytest.approx(2.0)


async def test_concurrent_calls_share_the_rate(fault_proxy: FaultProxy) -> None:
    provider = Ec2Provider({**platform(fault_proxy.url), "limits": {"calls_per_second": 20.0}})
    try:
        started = time.monotonic()
        await asyncio.gather(*(provider.observe(OWNER) for _ in range(30)))
        elapsed = time.monotonic() - started
    finally:
        await provider.aclose()
    assert elapsed >= 0.45  # a burst of 20, then 10 more at 20 a second
