"""The ``platform`` check kind against moto_server: a slot's machine running, stopped,
missing, and the platform's API failing (through the fault proxy)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from tests.fixtures.listener import free_port
from watchkeeper.infra.providers.base import TAG_RESOURCE, TAG_SLOT, Machine, MachineSpec
from watchkeeper.infra.providers.ec2 import Ec2Provider
from watchkeeper.results import CheckOutcome, CheckState
from watchkeeper.worker.executors import Executors
from watchkeeper.worker.executors.platform import PlatformExecutor

if TYPE_CHECKING:  # imported as plugins, below
    from tests.fixtures.faultproxy import FaultProxy
    from tests.fixtures.moto import Moto

pytest_plugins = ["tests.fixtures.moto", "tests.fixtures.faultproxy"]

OWNER = "cluster-7f3a"


def platform(endpoint: str, **options: Any) -> dict[str, Any]:
    return {
        "name": "eu-cloud",
        "provider": "ec2",
        "zone": "eu",
        "credentials": "env:WK_TEST_AWS",
        "poll": "1m",
        "limits": {"calls_per_second": 200.0},
        "options": {"region": "eu-west-1", "endpoint": endpoint, "max_attempts": 1, **options},
    }


def check(endpoint: str, host: str | None = "web-0", **fields: Any) -> dict[str, Any]:
    """A platform check as the manager dispatches it, with the platform injected."""
    spec: dict[str, Any] = {"kind": "platform", "platform": "eu-cloud", **fields}
    spec["_platform"] = platform(endpoint)
    if host is not None:
        spec["_host"] = host
    return spec


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WK_TEST_AWS", "AKIDCHECK:not-a-secret")


@pytest.fixture
async def executor() -> AsyncIterator[PlatformExecutor]:
    made = PlatformExecutor()
    yield made
    await made.aclose()


@pytest.fixture
async def machines(moto: Moto) -> AsyncIterator[dict[str, Machine]]:
    """web-0 running (with a CPU datapoint), web-1 stopped, web-2 terminated."""
    provider = Ec2Provider(platform(moto.url))
    try:
        made = {}
        for i in range(3):
            spec = MachineSpec(
                owner=OWNER, resource="web", slot=f"web-{i}", index=i, op=f"op-{i}",
                size="t3.small", image="ami-03cf127a",
            )  # fmt: skip
            made[spec.slot] = await provider.create(spec)
        await provider.stop(made["web-1"])
        await provider.destroy(made["web-2"])
    finally:
        await provider.aclose()
    moto.client("cloudwatch").put_metric_data(
        Namespace="AWS/EC2",
        MetricData=[
            {
                "MetricName": "CPUUtilization",
                "Dimensions": [{"Name": "InstanceId", "Value": made["web-0"].cloud_id}],
                "Value": 12.5,
                "Unit": "Percent",
                "Timestamp": datetime.now(UTC) - timedelta(minutes=1),
            }
        ],
    )
    yield made


def perfdata(result: CheckOutcome) -> dict[str, float]:
    return {m.label: m.value for m in result.metrics}


async def test_a_running_machine_is_ok_with_its_metrics(
    moto: Moto, machines: dict[str, Machine], executor: PlatformExecutor
) -> None:
    web0 = machines["web-0"]
    result = await executor.run(
        check(moto.url, metrics=["CPUUtilization", "NetworkIn"]), address="", timeout=10
    )
    assert result.state is CheckState.OK
    assert result.output == f"PLATFORM OK - web-0 running ({web0.cloud_id}, t3.small)"
    assert perfdata(result) == {"state": 1.0, "CPUUtilization": 12.5}
    assert result.long_output == "no data from the platform for: NetworkIn"


@pytest.mark.parametrize(
    ("host", "state", "text"),
    [
        ("web-1", CheckState.CRITICAL, "web-1 stopped"),
        ("web-2", CheckState.CRITICAL, "web-2 terminated"),
        ("web-9", CheckState.CRITICAL, "no machine for web-9 on platform eu-cloud"),
    ],
)
async def test_a_stopped_terminated_or_missing_machine_is_critical(
    moto: Moto,
    machines: dict[str, Machine],
    executor: PlatformExecutor,
    host: str,
    state: CheckState,
    text: str,
) -> None:
    result = await executor.run(check(moto.url, host=host), address="", timeout=10)
    assert (result.state, perfdata(result)) == (state, {"state": 0.0})
    assert result.output.startswith(f"PLATFORM CRITICAL - {text}")


async def test_the_slot_field_wins_and_the_address_is_the_fallback(
    moto: Moto, machines: dict[str, Machine], executor: PlatformExecutor
) -> None:
    by_slot = await executor.run(check(moto.url, slot="web-1"), address="", timeout=10)
    assert by_slot.output.startswith("PLATFORM CRITICAL - web-1 stopped")
    web0 = machines["web-0"]
    assert web0.address
    by_address = await executor.run(check(moto.url, host=None), address=web0.address, timeout=10)
    assert by_address.output.startswith("PLATFORM OK - web-0 running")


async def test_a_lookalike_does_not_count(
    moto: Moto, machines: dict[str, Machine], executor: PlatformExecutor
) -> None:
    tags = [{"Key": TAG_RESOURCE, "Value": "web"}, {"Key": TAG_SLOT, "Value": "web-5"}]
    moto.client().run_instances(
        ImageId="ami-03cf127a", MinCount=1, MaxCount=1,
        TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
    )  # fmt: skip
    result = await executor.run(check(moto.url, host="web-5"), address="", timeout=10)
    assert result.output.startswith("PLATFORM CRITICAL - no machine for web-5")
    foreign = check(moto.url, host="web-0", _owner="another-cluster")
    assert (await executor.run(foreign, address="", timeout=10)).state is CheckState.CRITICAL


async def test_an_api_failure_is_unknown_with_the_error_code(
    machines: dict[str, Machine], fault_proxy: FaultProxy, executor: PlatformExecutor
) -> None:
    fault_proxy.arm("throttle", 1)
    result = await executor.run(check(fault_proxy.url), address="", timeout=10)
    assert result.state is CheckState.UNKNOWN
    assert result.output.startswith("PLATFORM UNKNOWN - platform eu-cloud: ec2 describe_instances")
    assert "RequestLimitExceeded" in result.output and "not-a-secret" not in result.output

    nowhere = await executor.run(check(f"http://127.0.0.1:{free_port()}"), address="", timeout=10)
    assert nowhere.state is CheckState.UNKNOWN and "EndpointConnectionError" in nowhere.output

    fault_proxy.arm("hang", 1)
    hung = await executor.run(check(fault_proxy.url), address="", timeout=0.5)
    assert hung.output == "PLATFORM UNKNOWN - platform eu-cloud did not answer within 0.5s"


async def test_concurrent_checks_share_one_observation(
    machines: dict[str, Machine], fault_proxy: FaultProxy, executor: PlatformExecutor
) -> None:
    hosts = [f"web-{i % 3}" for i in range(9)]
    results = await asyncio.gather(
        *(executor.run(check(fault_proxy.url, host=h), address="", timeout=10) for h in hosts)
    )
    ok, critical = CheckState.OK, CheckState.CRITICAL
    assert [r.state for r in results] == [ok, critical, critical] * 3
    assert len(fault_proxy.requests) == 1  # one describe_instances for all nine


async def test_a_changed_platform_object_makes_a_new_provider(
    moto: Moto, machines: dict[str, Machine], fault_proxy: FaultProxy, executor: PlatformExecutor
) -> None:
    direct = await executor.run(check(moto.url), address="", timeout=10)
    assert direct.state is CheckState.OK and fault_proxy.requests == []
    proxied = await executor.run(check(fault_proxy.url), address="", timeout=10)
    assert proxied.state is CheckState.OK and len(fault_proxy.requests) == 1


async def test_unusable_checks_are_unknown(moto: Moto, executor: PlatformExecutor) -> None:
    missing = {"kind": "platform", "platform": "eu-cloud"}
    assert (await executor.run(missing, address="", timeout=5)).output == (
        "PLATFORM UNKNOWN - platform eu-cloud was not sent with the check (is it in the document?)"
    )
    other = check(moto.url) | {"platform": "us-cloud"}
    assert (
        "platform us-cloud was not sent"
        in (await executor.run(other, address="", timeout=5)).output
    )
    invalid = await executor.run(check(moto.url, metric="CPU"), address="", timeout=5)
    assert invalid.state is CheckState.UNKNOWN and "invalid check: metric" in invalid.output
    unknown = check(moto.url)
    unknown["_platform"] = unknown["_platform"] | {"provider": "nocloud"}
    assert "no provider 'nocloud'" in (await executor.run(unknown, address="", timeout=5)).output


async def test_the_registry_runs_platform_checks(moto: Moto, machines: dict[str, Machine]) -> None:
    executors = Executors()
    try:
        result = await executors.run(check(moto.url), address="", timeout=10)
    finally:
        await executors.aclose()
    assert result.output.startswith("PLATFORM OK - web-0 running")
