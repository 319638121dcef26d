"""Infrastructure end to end on LXC: the manager of ``watchkeeper up`` with its embedded
worker provisions, scales down and repairs busybox containers from the document.

The lab (`tests.fixtures.lxc`: a bridge of this run's own, an lxcpath, a busybox
template) is made once for the module. The containers' addresses are on that bridge,
so the slots' host checks really ping them, and the label selector's service
(``check_dummy``) runs against them. Every assertion about the platform is read back
from LXC itself (``lxc-ls``, ``lxc-info`` and the tags file beside each container),
the way an operator would look.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.lxc import LxcLab, lxc_lab
from tests.fixtures.up import RunningManagers
from tests.waiting import wait_until
from watchkeeper.infra.providers.base import TAG_OWNER, TAG_RESOURCE, TAG_SLOT
from watchkeeper.runtime import Manager

CHECK_DUMMY = "/usr/lib/nagios/plugins/check_dummy"

pytestmark = pytest.mark.skipif(
    not Path(CHECK_DUMMY).exists(), reason="monitoring-plugins (check_dummy) not installed"
)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LxcLab]:
    with lxc_lab(tmp_path_factory.mktemp("lxc")) as made:
        yield made


def document(lab: LxcLab, **resource: Any) -> dict[str, Any]:
    # Busybox's init ignores a clean stop: stops kill at once.
    platform = lab.platform("lab", stop_timeout="0s") | {"poll": "1s"}
    ping = {"interval": "1s", "retry_interval": "1s", "max_attempts": 1,
            "check": {"kind": "ping", "count": 1}}  # fmt: skip
    spec = {"name": "lab", "platform": "lab", "count": 2, "image": lab.template,
            "labels": {"role": "lab"}, "confirm": [], "host": {"check": ping},
            **resource}  # fmt: skip
    return {
        "schema": "watchkeeper/v1",
        "zones": [{"name": "lab"}],
        "platforms": [platform],
        "infrastructure": [spec],
        "services": [{"name": "alive", "hosts": {"labels": {"role": "lab"}},
                      "interval": "1s", "retry_interval": "1s", "max_attempts": 1,
                      "check": {"kind": "plugin", "command": [CHECK_DUMMY, "0", "alive"]}}],
    }  # fmt: skip


@dataclass
class Cloud:
    """The manager under test, the LXC lab it provisions on, and how to look at both."""

    manager: Manager
    lab: LxcLab
    source: Path
    api: httpx.AsyncClient

    def write(self, **resource: Any) -> None:
        self.source.write_text(json.dumps(document(self.lab, **resource)))

    def _containers(self) -> dict[str, str]:
        found = {}
        for name in self.lab.containers():
            try:
                meta = json.loads((self.lab.lxcpath / name / "watchkeeper.json").read_text())
            except FileNotFoundError:
                continue  # the template, or a container no provider made
            tags = meta["tags"]
            if tags.get(TAG_RESOURCE) == "lab" and tags.get(TAG_OWNER) == self.owner:
                found[tags[TAG_SLOT]] = name
        return found

    @property
    def owner(self) -> str:
        """The manager's owner tag (its cluster id)."""
        return self.manager.stages.infra.owner

    async def containers(self) -> dict[str, str]:
        """Slot -> container name, of every container in the lxcpath tagged ours."""
        return await asyncio.to_thread(self._containers)

    async def state(self, name: str) -> str:
        return await asyncio.to_thread(self.lab.state, name)

    async def get(self, path: str) -> Any:
        reply = await self.api.get(path)
        assert reply.status_code == 200, reply.text
        return reply.json()

    def last_check(self, key: str) -> float:
        status = self.manager.runner.engine.statuses.get(key) if self.manager.runner else None
        return (status.last_check if status else None) or 0.0

    def ok(self, key: str) -> bool:
        return self.check(key)[0] == "OK"

    def check(self, key: str) -> tuple[str, str]:
        status = self.manager.runner.engine.statuses.get(key) if self.manager.runner else None
        if status is None or status.pending:
            return "PENDING", ""
        return status.state.name, status.output


@pytest.fixture
async def start(tmp_path: Path, lab: LxcLab) -> AsyncIterator[Callable[..., Any]]:
    """Start the manager of ``watchkeeper up`` on the document (resource overrides as
    keyword arguments); stopped, its tasks awaited and its containers removed at the end."""
    managers = RunningManagers()

    async def start_(**resource: Any) -> Cloud:
        source = tmp_path / "doc.json"
        source.write_text(json.dumps(document(lab, **resource)))
        manager, api = await managers.start(source, tmp_path / "data")
        return Cloud(manager, lab, source, api)

    try:
        yield start_
    finally:
        await managers.stop_all()
        await asyncio.to_thread(lab.remove_all)


async def test_count_scale_down_and_drift_end_to_end(start: Callable[..., Any]) -> None:
    cloud: Cloud = await start()
    lab = cloud.lab

    # count 2: two containers, cloned from the template and running.
    async def two_running() -> bool:
        found = await cloud.containers()
        return sorted(found) == ["lab-0", "lab-1"] and all(
            [await cloud.state(n) == "RUNNING" for n in found.values()]
        )

    await wait_until(two_running, within=30, what="2 running containers")
    before = await cloud.containers()
    assert all(name.startswith(f"{slot}-") for slot, name in before.items())

    # ... that are the slots' hosts, at their static addresses on the lab's bridge ...
    addresses = {"lab-0": lab.address(0), "lab-1": lab.address(1)}

    async def hosts_have_addresses() -> bool:
        hosts = {h["name"]: h for h in (await cloud.get("/hosts?limit=100"))["items"]}
        return all(hosts.get(s, {}).get("address") == a for s, a in addresses.items())

    await wait_until(hosts_have_addresses, within=20, what="slot hosts with their addresses")
    detail = await cloud.get("/hosts/lab-1")
    assert detail["labels"]["role"] == "lab"
    # ... whose host checks ping them, and which get the selector's service.
    for key in (*addresses, *(f"{slot}!alive" for slot in addresses)):
        await wait_until(functools.partial(cloud.ok, key), within=20, what=f"{key} OK")
    assert all(cloud.check(slot)[1].startswith("PING OK") for slot in addresses)
    await wait_until(lambda: cloud.check("infra:lab") == ("OK", "2/2 converged"), within=20,
                     what="infra:lab OK, 2/2 converged")  # fmt: skip

    # 2 -> 1 destroys exactly lab-1; lab-0's container is untouched.
    cloud.write(count=1)

    async def one_left() -> bool:
        return sorted(await cloud.containers()) == ["lab-0"]

    await wait_until(one_left, within=30, what="lab-1's container destroyed")
    assert await cloud.containers() == {"lab-0": before["lab-0"]}
    assert before["lab-1"] not in await asyncio.to_thread(lab.containers)
    assert not (lab.lxcpath / before["lab-1"]).exists()
    assert await cloud.state(before["lab-0"]) == "RUNNING"
    await wait_until(lambda: cloud.check("infra:lab") == ("OK", "1/1 converged"), within=20,
                     what="infra:lab OK, 1/1 converged")  # fmt: skip

    # Out-of-band kill of lab-0: seen as drift, then started again (same container).
    await asyncio.to_thread(lab.lxc, "lxc-stop", "-n", before["lab-0"], "-k")

    async def running_again() -> bool:
        return await cloud.state(before["lab-0"]) == "RUNNING"

    await wait_until(running_again, within=30, what="lab-0 started again")
    assert await cloud.containers() == {"lab-0": before["lab-0"]}

    async def history_shows_both() -> bool:  # states are saved in batches
        items = (await cloud.get("/checks/infra:lab/history"))["items"]
        states = [(e.get("state"), str(e.get("output"))) for e in items]
        return any(st == "WARNING" and "lab-0 stopped out of band" in out
                   for st, out in states) and states[0][0] == "OK"  # fmt: skip

    await wait_until(history_shows_both, within=20, what="the history: drift, then OK")
    # Its address is back too: a ping made after the restart answers.
    restarted = cloud.last_check("lab-0")
    await wait_until(lambda: cloud.last_check("lab-0") > restarted
                     and cloud.check("lab-0")[0] == "OK", within=20,
                     what="lab-0 answers a ping again")  # fmt: skip
    operations = (await cloud.get("/infra/operations?limit=100"))["items"]
    reasons = [op["reason"] for op in operations]
    assert "-lab-1: count 1" in reasons
    assert "start lab-0: stopped out of band" in reasons
