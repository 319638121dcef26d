"""Infrastructure end to end on libcloud's dummy driver: the manager of ``watchkeeper up``
with its embedded worker provisions and scales nodes from the document.

The dummy's "cloud" is its driver object, which lives in the embedded worker's provider
(same process, one provider per platform): it persists for the manager's life. The test
gets hold of that provider as it is made, to look at the cloud as an operator would
(``list_nodes``): the dummy's two seeded nodes, ``dummy-1`` and ``dummy-2``, must be
there untouched at the end, and never be reported as ours.
"""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.up import RunningManagers
from tests.waiting import wait_until
from watchkeeper.infra.providers.base import Machine
from watchkeeper.infra.providers.libcloud import LibcloudProvider
from watchkeeper.runtime import Manager

CHECK_DUMMY = "/usr/lib/nagios/plugins/check_dummy"
#: The platform's credentials, as the worker's environment holds them: the dummy's
#: constructor argument (not a number, so it seeds its usual two nodes).
SECRET = "wk-dummy-key-5e7b"
SEEDED = ["dummy-1", "dummy-2"]

pytestmark = pytest.mark.skipif(
    not Path(CHECK_DUMMY).exists(), reason="monitoring-plugins (check_dummy) not installed"
)


def document(**resource: Any) -> dict[str, Any]:
    spec = {"name": "web", "platform": "rack", "count": 3, "size": "1", "image": "1",
            "labels": {"role": "web"}, "confirm": [], "host": {"address": "public"},
            **resource}  # fmt: skip
    return {
        "schema": "watchkeeper/v1",
        "zones": [{"name": "dc1"}],
        "platforms": [{"name": "rack", "provider": "libcloud", "zone": "dc1",
                       "credentials": "env:WK_TEST_LIBCLOUD", "poll": "1s",
                       "options": {"driver": "dummy"}}],
        "infrastructure": [spec],
        "services": [{"name": "alive", "hosts": {"labels": {"role": "web"}},
                      "interval": "1s", "retry_interval": "1s", "max_attempts": 1,
                      "check": {"kind": "plugin", "command": [CHECK_DUMMY, "0", "alive"]}}],
    }  # fmt: skip


@dataclass
class Cloud:
    """The manager under test, the dummy cloud it provisions on, and how to look at both."""

    manager: Manager
    source: Path
    api: httpx.AsyncClient
    providers: list[LibcloudProvider]

    def write(self, **resource: Any) -> None:
        self.source.write_text(json.dumps(document(**resource)))

    def driver(self) -> Any:
        """The dummy driver: the whole cloud (one provider, so one cloud, per platform)."""
        drivers = [p._driver for p in self.providers if p._driver is not None]
        assert len(drivers) == 1, f"{len(drivers)} dummy clouds for one platform"
        return drivers[0]

    def node_names(self) -> list[str]:
        """Every node of the dummy cloud, ours or not."""
        return sorted(str(n.name) for n in self.driver().list_nodes())

    def machines(self) -> list[Machine]:
        """The platform's last inventory, as the manager keeps it."""
        state = self.manager.stages.infra.platform_states().get("rack")
        return list(state.inventory.machines) if state and state.inventory else []

    def owned(self) -> dict[str, Machine]:
        """Slot -> machine, of the live ones carrying our owner tag."""
        owner = self.manager.stages.infra.owner
        return {m.slot: m for m in self.machines() if m.owner == owner and m.state != "terminated"}

    async def get(self, path: str) -> Any:
        reply = await self.api.get(path)
        assert reply.status_code == 200, reply.text
        return reply.json()

    def ok(self, key: str) -> bool:
        return self.check(key)[0] == "OK"

    def check(self, key: str) -> tuple[str, str]:
        status = self.manager.runner.engine.statuses.get(key) if self.manager.runner else None
        if status is None or status.pending:
            return "PENDING", ""
        return status.state.name, status.output


@pytest.fixture
async def start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Callable[..., Any]]:
    """Start the manager of ``watchkeeper up`` on the document (resource overrides as
    keyword arguments); stopped, and its tasks awaited, at the end of the test."""
    monkeypatch.setenv("WK_TEST_LIBCLOUD", SECRET)
    providers: list[LibcloudProvider] = []
    made = LibcloudProvider.__init__

    def spy(self: LibcloudProvider, platform: Any) -> None:
        made(self, platform)
        providers.append(self)

    monkeypatch.setattr(LibcloudProvider, "__init__", spy)
    managers = RunningManagers()

    async def start_(**resource: Any) -> Cloud:
        source = tmp_path / "doc.json"
        source.write_text(json.dumps(document(**resource)))
        manager, api = await managers.start(source, tmp_path / "data")
        return Cloud(manager, source, api, providers)

    yield start_
    await managers.stop_all()


async def test_count_and_scale_down_on_the_dummy_driver(start: Callable[..., Any]) -> None:
    cloud: Cloud = await start()
    # count 3: three nodes of ours, beside the dummy's two seeded ones.
    await wait_until(lambda: len(cloud.owned()) == 3, within=30, what="3 owned nodes")
    before = cloud.owned()
    assert sorted(before) == ["web-0", "web-1", "web-2"]
    assert cloud.driver().creds == SECRET  # the env: reference, resolved on the worker
    assert cloud.node_names() == sorted([*SEEDED, "dummy-3", "dummy-4", "dummy-5"])
    # The seeded nodes are not ours, nor reported at all (not even as lookalikes).
    assert {m.cloud_id for m in cloud.machines()} == {m.cloud_id for m in before.values()}
    resources = (await cloud.get("/infra/resources"))["items"]
    slots = {s["slot"]: s for r in resources for s in r["slots"]}
    assert sorted(slots) == ["web-0", "web-1", "web-2"]
    assert {s["cloud_id"] for s in slots.values()} == {m.cloud_id for m in before.values()}
    plans = (await cloud.get("/infra/plan"))["plans"]
    assert [p["lookalikes"] for p in plans] == [[]]
    assert not any(name in json.dumps([resources, plans]) for name in SEEDED)

    # The slots are hosts at their nodes' public addresses, with the selector's service.
    addresses = {slot: m.public_address for slot, m in before.items()}
    assert all(addresses.values())

    async def hosts_have_addresses() -> bool:
        hosts = {h["name"]: h for h in (await cloud.get("/hosts?limit=100"))["items"]}
        return all(hosts.get(s, {}).get("address") == a for s, a in addresses.items())

    await wait_until(hosts_have_addresses, within=20, what="slot hosts with their addresses")
    for slot in addresses:
        await wait_until(functools.partial(cloud.ok, f"{slot}!alive"), within=20,
                         what=f"{slot}!alive OK")  # fmt: skip

    # 3 -> 2 destroys exactly web-2; the seeded nodes are still there.
    cloud.write(count=2)
    await wait_until(lambda: len(cloud.owned()) == 2, within=30, what="2 owned nodes")
    assert cloud.owned() == {k: v for k, v in before.items() if k != "web-2"}
    assert cloud.node_names() == sorted([*SEEDED, "dummy-3", "dummy-4"])
    operations = (await cloud.get("/infra/operations?limit=100"))["items"]
    destroys = [(op["slot"], op["cloud_id"], op["state"]) for op in operations
                if op["op"] == "destroy"]  # fmt: skip
    assert destroys == [("web-2", before["web-2"].cloud_id, "succeeded")]
    await wait_until(lambda: cloud.check("infra:web")[1].endswith("/2 converged"), within=20,
                     what="infra:web reports on 2 slots")  # fmt: skip


async def test_the_resource_converges_on_the_dummy_driver(start: Callable[..., Any]) -> None:
    cloud: Cloud = await start()
    await wait_until(lambda: len(cloud.owned()) == 3, within=30, what="3 owned nodes")
    await wait_until(lambda: cloud.check("infra:web") == ("OK", "3/3 converged"), within=10,
                     what="infra:web OK, 3/3 converged")  # fmt: skip
