"""The libcloud provider with libcloud's own DummyNodeDriver: its whole cloud is in-process.

The dummy seeds two nodes (``dummy-1``, ``dummy-2``), ignores the names it is given, has no
tags, no start_node/stop_node, and numbers a new node "count of nodes + 1" (so ids repeat,
even alongside a live node, after a destroy).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from libcloud.compute.base import Node

from watchkeeper.infra.providers.base import (
    TAG_OWNER,
    TAG_RESOURCE,
    Machine,
    MachineSpec,
    ProviderError,
)
from watchkeeper.infra.providers.libcloud import LibcloudProvider, decode_name, encode_name

OWNER = "wk0123456789abcdef"


def platform(**fields: Any) -> dict[str, Any]:
    options = fields.pop("options", {"driver": "dummy", "args": ["seed"]})
    return {"name": "dummy", "provider": "libcloud", "zone": "lab", "options": options} | fields


@pytest.fixture
async def provider() -> AsyncIterator[LibcloudProvider]:
    made = LibcloudProvider(platform())
    yield made
    await made.aclose()


def spec(index: int, op: str = "op-1", owner: str = OWNER) -> MachineSpec:
    return MachineSpec(
        owner=owner,
        resource="web",
        slot=f"web-{index}",
        index=index,
        op=op,
        size="Small",
        image="Ubuntu 9.10",
    )


def nodes(provider: LibcloudProvider) -> list[Node]:
    """What the dummy's cloud holds (it lives in the provider's driver)."""
    assert provider._driver is not None
    return list(provider._driver.list_nodes())


async def slots(provider: LibcloudProvider) -> dict[str, Machine]:
    return {m.slot: m for m in await provider.observe(OWNER) if m.owner == OWNER}


async def test_two_slots_are_ours_and_the_seeded_nodes_are_not(
    provider: LibcloudProvider,
) -> None:
    made = [await provider.create(spec(0)), await provider.create(spec(1))]

    seen = await provider.observe(OWNER)

    assert sorted(m.slot for m in seen) == ["web-0", "web-1"]
    assert all(m.owner == OWNER and m.resource == "web" and m.state == "running" for m in seen)
    assert {m.cloud_id for m in seen} == {m.cloud_id for m in made}
    assert all(m.tags[TAG_OWNER] == OWNER and m.op == "op-1" for m in seen)
    names = sorted(n.name for n in nodes(provider))
    assert names == ["dummy-1", "dummy-2", "dummy-3", "dummy-4"]  # ours named as it likes
    for node_id in ("1", "2"):  # the seeded nodes: not ours to touch
        with pytest.raises(ProviderError) as refused:
            await provider.destroy(Machine(cloud_id=node_id, owner=OWNER, resource="web"))
        assert refused.value.code == "OperationNotPermitted"


async def test_capabilities_follow_the_driver(provider: LibcloudProvider) -> None:
    assert provider.capabilities == {"observe", "create", "destroy", "reboot"}
    machine = await provider.create(spec(0))
    for call in (provider.start(machine), provider.stop(machine), provider.resize(machine, "Big")):
        with pytest.raises(ProviderError) as unsupported:
            await call
        assert unsupported.value.code == "Unsupported"
    with pytest.raises(ProviderError) as unsupported:
        await provider.protect(machine, True)
    assert unsupported.value.code == "Unsupported"


async def test_reboot(provider: LibcloudProvider) -> None:
    machine = await provider.create(spec(0))
    await provider.reboot(machine)
    node = next(n for n in nodes(provider) if n.public_ips == [machine.public_address])
    assert node.state == "rebooting"
    assert (await slots(provider))["web-0"].state == "running"  # as EC2 reports a reboot


async def test_destroy_the_highest_then_refill_with_a_repeated_id(
    provider: LibcloudProvider,
) -> None:
    for index in range(3):
        await provider.create(spec(index))
    before = await slots(provider)

    await provider.destroy(before["web-2"])
    after = await slots(provider)
    assert sorted(after) == ["web-0", "web-1"]
    assert {m.cloud_id for m in after.values()} == {
        before["web-0"].cloud_id,
        before["web-1"].cloud_id,
    }

    await provider.destroy(before["web-0"])
    again = await provider.create(spec(0, op="op-2"))
    ids = [str(n.id) for n in nodes(provider)]
    assert len(ids) != len(set(ids))  # the dummy reused an id that is still live...
    now = await slots(provider)
    assert sorted(now) == ["web-0", "web-1"]
    assert len({m.cloud_id for m in now.values()}) == 2  # ...yet each slot has its own
    assert now["web-0"].cloud_id == again.cloud_id and now["web-0"].op == "op-2"
    await provider.destroy(now["web-1"])
    assert sorted(await slots(provider)) == ["web-0"]
    await provider.destroy(before["web-2"])  # already gone: nothing to do


async def test_create_is_idempotent_per_slot(provider: LibcloudProvider) -> None:
    first = await provider.create(spec(0))
    second = await provider.create(spec(0, op="op-2"))
    assert second.cloud_id == first.cloud_id
    assert len(await slots(provider)) == 1


async def test_another_owner_is_a_lookalike(provider: LibcloudProvider) -> None:
    theirs = await provider.create(spec(0, owner="wkother"))
    seen = await provider.observe(OWNER)
    assert [(m.owner, m.slot) for m in seen] == [("wkother", "web-0")]
    with pytest.raises(ProviderError) as refused:
        await provider.destroy(Machine(cloud_id=theirs.cloud_id, owner=OWNER, resource="web"))
    assert refused.value.code == "OperationNotPermitted"


async def test_credentials_and_driver_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WK_TEST_DUMMY", "3")  # the dummy's creds: seed three nodes
    made = LibcloudProvider(platform(credentials="env:WK_TEST_DUMMY", options={"driver": "dummy"}))
    assert await made.observe(OWNER) == []
    assert len(nodes(made)) == 3

    monkeypatch.setenv("WK_TEST_DUMMY", "key:s3cr3t-value")  # two arguments: too many
    wrong = LibcloudProvider(platform(credentials="env:WK_TEST_DUMMY", options={"driver": "dummy"}))
    with pytest.raises(ProviderError) as failed:
        await wrong.observe(OWNER)
    assert "s3cr3t-value" not in str(failed.value)

    missing = LibcloudProvider(platform(credentials="env:WK_TEST_NOT_SET"))
    with pytest.raises(ProviderError) as unresolved:
        await missing.observe(OWNER)
    assert unresolved.value.code == "Credentials"


async def test_bad_sizes_images_and_drivers_are_named(provider: LibcloudProvider) -> None:
    bad = MachineSpec(owner=OWNER, resource="web", slot="web-0", op="x", size="Huge", image="1")
    with pytest.raises(ProviderError, match="no size 'Huge'") as failed:
        await provider.create(bad)
    assert failed.value.code == "InvalidParameter"
    with pytest.raises(ProviderError, match="no compute driver 'nope'"):
        LibcloudProvider(platform(options={"driver": "nope"}))


def test_names_carry_the_tags_both_ways() -> None:
    name = encode_name(spec(2))
    assert name == f"wk--web--web-2--{OWNER}--op-1"
    assert decode_name(name) == {
        TAG_RESOURCE: "web",
        "watchkeeper:slot": "web-2",
        TAG_OWNER: OWNER,
        "watchkeeper:op": "op-1",
    }
    assert decode_name("dummy-1") is None
    with pytest.raises(ProviderError):
        encode_name(MachineSpec(owner=OWNER, resource="a--b", slot="a--b-0", op="x"))


async def test_a_driver_that_needs_a_key_and_has_none_says_so() -> None:
    keyless = LibcloudProvider(platform(options={"driver": "dummy"}))
    try:
        with pytest.raises(ProviderError) as caught:
            await keyless.observe(OWNER)
    finally:
        await keyless.aclose()
    assert caught.value.code == "Credentials"
    assert "needs credentials" in str(caught.value) and "env:NAME" in str(caught.value)
