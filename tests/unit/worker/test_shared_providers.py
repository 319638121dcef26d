"""One provider per platform per worker: infra jobs, platform actions and platform checks
share it (one API client, one rate limit), and closing the executors closes it once."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import BaseModel

from watchkeeper.document.platforms import PlatformConfig
from watchkeeper.infra.providers import Machine
from watchkeeper.jobs.payloads import ActionPayload, CheckPayload, InfraPayload
from watchkeeper.plugins import PROVIDERS
from watchkeeper.results import CheckState
from watchkeeper.transport.protocol import Job
from watchkeeper.worker.executors import Executors
from watchkeeper.worker.runner import job_runner

OWNER = "wkshared0000001"
PLATFORM = {"name": "lab", "provider": "shared-test", "zone": "core"}


class SharedPlatform(PlatformConfig):
    provider: Literal["shared-test"]


class Shared:
    kind: ClassVar[str] = "shared-test"
    Config: ClassVar[type[BaseModel]] = SharedPlatform
    capabilities: ClassVar[frozenset[str]] = frozenset({"observe", "reboot", "metrics"})
    made: ClassVar[int] = 0
    closed: ClassVar[int] = 0

    def __init__(self, platform: Mapping[str, Any]) -> None:
        Shared.made += 1

    async def observe(self, owner: str) -> list[Machine]:
        return [Machine(cloud_id="m-1", resource="web", slot="web-0", owner=OWNER,
                        state="running")]  # fmt: skip

    async def find(self, cloud_id: str) -> Machine | None:
        return next((m for m in await self.observe("") if m.cloud_id == cloud_id), None)

    async def reboot(self, machine: Machine) -> None:
        return None

    async def metrics(self, machine: Machine, names: Any) -> list[Any]:
        return []

    async def aclose(self) -> None:
        Shared.closed += 1


def job(payload: Any) -> Job:
    return Job(job_id="j-1", zone="core", payload=payload, deadline=time.time() + 30)


async def test_infra_jobs_actions_and_checks_share_one_provider() -> None:
    PROVIDERS.register(Shared)
    Shared.made = Shared.closed = 0
    executors = Executors()
    run = job_runner(executors)
    try:
        observed = await run(job(InfraPayload(op="observe", platform=PLATFORM, owner=OWNER)))
        rebooted = await run(job(ActionPayload(
            action={"kind": "platform", "platform": "lab", "operation": "reboot"},
            host="web-0", platform=PLATFORM, owner=OWNER,
        )))  # fmt: skip
        checked = await run(job(CheckPayload(
            key="web-0!instance", check={"kind": "platform", "platform": "lab",
                                         "_platform": PLATFORM, "_host": "web-0",
                                         "_owner": OWNER},
        )))  # fmt: skip
        await executors.aclose()
    finally:
        PROVIDERS.unregister("shared-test")
    assert observed.state is CheckState.OK, observed.output
    assert rebooted.state is CheckState.OK, rebooted.output
    assert checked.state is CheckState.OK, checked.output
    assert (Shared.made, Shared.closed) == (1, 1)
