"""The lxc provider against real LXC: busybox clones on a bridge made for this run.

The lab (`tests.fixtures.lxc`: a bridge, an lxcpath, a busybox template) is made once
for the module; each test uses an owner of its
own, so its containers are its own, and removes what it made whatever happened.
"""

from __future__ import annotations

import asyncio
import functools
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.lxc import LxcLab, lxc_lab
from tests.waiting import wait_until
from watchkeeper.infra.providers.base import (
    TAG_PROTECT,
    TAG_RESOURCE,
    TAG_SLOT,
    Machine,
    MachineSpec,
    ProviderError,
)
from watchkeeper.infra.providers.lxc import LxcProvider, container_name, slot_address

Create = Callable[..., Awaitable[Machine]]


async def pingable(address: str) -> bool:
    process = await asyncio.create_subprocess_exec(
        "ping", "-c1", "-W1", address,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    return await process.wait() == 0


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LxcLab]:
    with lxc_lab(tmp_path_factory.mktemp("lxc")) as made:
        yield made


@pytest.fixture
def owner() -> str:
    return "wk" + secrets.token_hex(8)


@pytest.fixture
async def provider(lab: LxcLab) -> AsyncIterator[LxcProvider]:
    """A provider on the lab (busybox ignores a clean stop: stops kill at once)."""
    made = LxcProvider(lab.platform(stop_timeout="0s"))
    yield made
    await made.aclose()
    lab.remove_all()


@pytest.fixture
def create(provider: LxcProvider, owner: str, lab: LxcLab) -> Create:
    async def make(index: int, resource: str = "web", **fields: Any) -> Machine:
        spec = MachineSpec(
            owner=owner,
            resource=resource,
            slot=f"{resource}-{index}",
            index=index,
            op="op-1",
            image=lab.template,
            **fields,
        )
        return await provider.create(spec)

    return make


async def ours(provider: LxcProvider, owner: str) -> dict[str, Machine]:
    return {m.slot: m for m in await provider.observe(owner) if m.owner == owner}


async def test_two_slots_run_at_their_addresses_and_the_highest_goes(
    provider: LxcProvider, create: Create, owner: str, lab: LxcLab
) -> None:
    made = await asyncio.gather(create(0), create(1))

    seen = await ours(provider, owner)
    assert sorted(seen) == ["web-0", "web-1"]
    for index, slot in enumerate(("web-0", "web-1")):
        machine = seen[slot]
        assert (machine.state, machine.address) == ("running", lab.address(index))
        assert machine.resource == "web" and machine.image == lab.template
        assert machine.tags[TAG_SLOT] == slot
        assert lab.state(machine.cloud_id) == "RUNNING"
        address = lab.address(index)
        await wait_until(functools.partial(pingable, address), what=f"ping {address}")
    assert {m.cloud_id for m in made} == {m.cloud_id for m in seen.values()}

    await provider.destroy(seen["web-1"])

    after = await ours(provider, owner)
    assert sorted(after) == ["web-0"]
    assert after["web-0"].cloud_id == seen["web-0"].cloud_id
    assert seen["web-1"].cloud_id not in lab.containers()
    await provider.destroy(seen["web-1"])  # already gone: nothing to do


async def test_stop_and_start(provider: LxcProvider, create: Create, owner: str) -> None:
    machine = await create(0)

    await provider.stop(machine)
    stopped = (await ours(provider, owner))["web-0"]
    assert stopped.state == "stopped"
    assert stopped.address == machine.address  # the configured one, as it will be

    await provider.start(stopped)
    started = (await ours(provider, owner))["web-0"]
    assert (started.state, started.address) == ("running", machine.address)
    assert started.address is not None
    await wait_until(lambda: pingable(str(started.address)), what=f"ping {started.address}")

    await provider.reboot(started)
    rebooted = (await ours(provider, owner))["web-0"]
    assert (rebooted.state, rebooted.address) == ("running", machine.address)


async def test_a_container_without_our_file_is_never_reported(
    provider: LxcProvider, create: Create, owner: str, lab: LxcLab
) -> None:
    await create(0)
    lab.clone("foreign")
    lookalike = lab.clone("lookalike")
    (lookalike / "watchkeeper.json").write_text(
        json.dumps({"tags": {TAG_RESOURCE: "web", TAG_SLOT: "web-1"}})
    )

    seen = await provider.observe(owner)

    assert "foreign" not in {m.cloud_id for m in seen}
    other = next(m for m in seen if m.cloud_id == "lookalike")
    assert (other.owner, other.resource, other.slot) == ("", "web", "web-1")
    assert sorted(await ours(provider, owner)) == ["web-0"]
    for name, claimed in (("lookalike", ""), ("lookalike", owner), ("foreign", owner)):
        with pytest.raises(ProviderError) as refused:
            await provider.destroy(Machine(cloud_id=name, owner=claimed, resource="web"))
        assert refused.value.code == "OperationNotPermitted"
    assert {"foreign", "lookalike"} <= set(lab.containers())


async def test_protect_refuses_destroy_until_lifted(
    provider: LxcProvider, create: Create, owner: str, lab: LxcLab
) -> None:
    machine = await create(0, protect=True)
    assert machine.protected and machine.tags[TAG_PROTECT] == "true"

    with pytest.raises(ProviderError) as refused:
        await provider.destroy(machine)
    assert refused.value.code == "OperationNotPermitted"
    assert machine.cloud_id in lab.containers()

    await provider.protect(machine, False)
    assert not (await ours(provider, owner))["web-0"].protected
    await provider.protect(machine, True)
    assert (await ours(provider, owner))["web-0"].protected
    await provider.protect(machine, False)
    await provider.destroy(machine)
    assert machine.cloud_id not in lab.containers()


async def test_metrics_and_resize(provider: LxcProvider, create: Create, lab: LxcLab) -> None:
    machine = await create(0, size="64M")

    metrics = {m.label: m for m in await provider.metrics(machine, [])}
    assert metrics["state"].value == 1.0
    assert metrics["memory_bytes"].value > 0 and metrics["memory_bytes"].uom == "B"
    assert metrics["cpu_seconds"].value >= 0
    assert [m.label for m in await provider.metrics(machine, ["memory_bytes"])] == ["memory_bytes"]

    await provider.resize(machine, "96M")
    limit = lab.lxc("lxc-cgroup", "-n", machine.cloud_id, "memory.limit_in_bytes")
    assert int(limit) == 96 * 2**20
    assert "= 96M" in (lab.lxcpath / machine.cloud_id / "config").read_text()

    await provider.stop(machine)
    assert [(m.label, m.value) for m in await provider.metrics(machine, [])] == [("state", 0.0)]


async def test_errors_name_what_is_wrong(provider: LxcProvider, owner: str) -> None:
    spec = MachineSpec(owner=owner, resource="web", slot="web-0", op="op-1", image="no-such")
    with pytest.raises(ProviderError, match="template container 'no-such' not found") as missing:
        await provider.create(spec)
    assert missing.value.code == "TemplateNotFound"
    assert not await provider.observe(owner)


async def test_a_second_create_of_a_slot_returns_it(
    provider: LxcProvider, create: Create, owner: str
) -> None:
    first = await create(0)
    again = await create(0)
    assert again.cloud_id == first.cloud_id
    assert len(await ours(provider, owner)) == 1


# --- without LXC ---------------------------------------------------------------------------


def test_names_differ_per_owner_and_fit_lxc() -> None:
    a = MachineSpec(owner="wk00aa", resource="web", slot="web-2", index=2, op="x")
    b = MachineSpec(owner="wk00ab", resource="web", slot="web-2", index=2, op="x")
    long = MachineSpec(owner="wk00aa", resource="w" * 120, slot="w" * 120 + "-3", op="x")
    assert container_name(a) != container_name(b)
    assert container_name(a).startswith("web-2-")
    assert len(container_name(long)) <= 63


def test_addresses_follow_the_slot_index_and_run_out_clearly() -> None:
    assert str(slot_address("10.213.20.0/24", 10, 3, "web-3")) == "10.213.20.13/24"
    assert str(slot_address("10.213.20.0/24", 10, 244, "web-244")) == "10.213.20.254/24"
    with pytest.raises(ProviderError, match="no address for web-245") as exhausted:
        slot_address("10.213.20.0/24", 10, 245, "web-245")
    assert exhausted.value.code == "AddressExhausted"


def test_options_are_checked() -> None:
    base = {"name": "lab", "provider": "lxc", "zone": "lab"}
    with pytest.raises(ProviderError) as bad:
        LxcProvider(base | {"options": {"bridge": "br0", "network": "10.213.20.1/24"}})
    assert bad.value.code == "InvalidConfiguration"
    made = LxcProvider(base | {"options": {"bridge": "br0", "network": "10.213.20.0/24"}})
    assert made.options.lxcpath == "/var/lib/lxc" and made.options.snapshot


async def test_a_cloud_id_never_leaves_lxcpath(tmp_path: Path) -> None:
    options = {"lxcpath": str(tmp_path), "bridge": "br0", "network": "10.213.20.0/24"}
    made = LxcProvider({"name": "lab", "provider": "lxc", "zone": "lab", "options": options})
    (tmp_path.parent / "victim").mkdir(exist_ok=True)
    for name in ("../victim", "..", "-k"):
        with pytest.raises(ProviderError) as refused:
            await made.destroy(Machine(cloud_id=name, owner="wk1", resource="web"))
        assert refused.value.code == "InvalidParameter"
    assert (tmp_path.parent / "victim").is_dir()
