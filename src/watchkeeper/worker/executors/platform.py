"""The platform executor: ask a host's platform (its cloud API) about the host's machine.

A ``platform`` check observes the platform through its provider
(`watchkeeper.plugins.PROVIDERS`), finds the machine Watchkeeper owns for the host, and
reports its state: OK running, WARNING on its way (pending, stopping), CRITICAL stopped,
terminated or missing, UNKNOWN when the API fails (with the platform's error code).
Perfdata is ``state`` (1 running, 0 otherwise) and the metrics asked for, as the
provider reads them (CloudWatch averages on ec2), so graphs and thresholds work as for any
plugin.

Executors only get the check object, so the manager injects what they cannot know into
it before dispatch, and `PlatformExecutor.run` strips those keys before validating:

    _platform   the platform's document object (credentials as a reference, resolved by
                the provider on this worker); required
    _host       the checked host's name; optional
    _owner      the manager's owner id; optional (without it any owner tag will do)

The machine is the owned one (owner tag set, and ``_owner`` when given) whose slot is the
check's ``slot``, else ``_host``; with neither, the one whose private or public address is
the check's address. Providers come from a `ProviderCache` (the worker's shared one when
it passes it, else the executor's own, closed by `PlatformExecutor.aclose`); concurrent
checks of one platform share one observation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Sequence
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field

from watchkeeper.document.fields import Name, Strict
from watchkeeper.infra.providers.base import Machine, Provider, ProviderError
from watchkeeper.infra.providers.cache import ProviderCache
from watchkeeper.plugins import CHECKS, PROVIDERS, UnknownKind
from watchkeeper.results import CheckOutcome, CheckState, Metric
from watchkeeper.worker.executors.base import outcome, validate_spec

#: The keys the manager injects into the check object (see the module docstring).
PLATFORM_KEY = "_platform"
HOST_KEY = "_host"
OWNER_KEY = "_owner"

#: Machine state -> check state; anything else is UNKNOWN.
STATES = {
    "running": CheckState.OK,
    "pending": CheckState.WARNING,
    "stopping": CheckState.WARNING,
    "stopped": CheckState.CRITICAL,
    "terminated": CheckState.CRITICAL,
}
#: Which machine of a slot counts when there are several (a terminated one lingers next
#: to its replacement): the lowest rank, then the newest.
_RANK = {"running": 0, "pending": 1, "stopping": 2, "stopped": 3, "unknown": 4, "terminated": 5}


class PlatformCheck(Strict):
    """The state of the host's machine on its platform, and metrics through the API."""

    kind: Literal["platform"]
    platform: Name = Field(description="The platform object (in platforms) of the machine.")
    metrics: list[Name] = Field(
        default_factory=list,
        max_length=32,
        description="Metrics to read through the API (CPUUtilization...); state always.",
    )
    slot: Name | None = Field(
        default=None, description="The machine's slot; by default the checked host's name."
    )

    #: Fields that name another object of the document: field -> its section.
    references: ClassVar[dict[str, str]] = {"platform": "platforms"}


@CHECKS.register
class PlatformExecutor:
    """Runs ``platform`` checks with one provider per platform."""

    kind: ClassVar[str] = "platform"
    Config: ClassVar[type[BaseModel]] = PlatformCheck
    label: ClassVar[str] = "PLATFORM"
    #: `Executors` makes it with the worker's shared `ProviderCache`.
    uses_providers: ClassVar[bool] = True

    def __init__(self, *, providers: ProviderCache | None = None) -> None:
        """``providers`` is shared with the worker's other platform users, who close it."""
        self._own = providers is None
        self._providers = providers or ProviderCache()
        #: In-flight observations, by provider (a changed platform does not share).
        self._observing: dict[int, asyncio.Task[Sequence[Machine]]] = {}

    async def run(
        self,
        check: dict[str, Any],
        *,
        address: str,
        timeout: float,  # noqa: ASYNC109
    ) -> CheckOutcome:
        started = time.perf_counter()
        check = dict(check)
        platform = check.pop(PLATFORM_KEY, None)
        host = check.pop(HOST_KEY, None)
        owner = check.pop(OWNER_KEY, None)
        owner = owner if isinstance(owner, str) else ""
        spec = validate_spec(PlatformCheck, check, self.label)
        if isinstance(spec, CheckOutcome):
            return spec

        def done(
            state: CheckState, text: str, metrics: Sequence[Metric] = (), long_output: str = ""
        ) -> CheckOutcome:
            elapsed = time.perf_counter() - started
            line = f"{self.label} {state.name} - {text}"
            return outcome(
                state, line, metrics=tuple(metrics), duration=elapsed, long_output=long_output
            )

        if not isinstance(platform, dict) or platform.get("name") != spec.platform:
            return done(
                CheckState.UNKNOWN,
                f"platform {spec.platform} was not sent with the check (is it in the document?)",
            )
        slot = spec.slot or (host if isinstance(host, str) and host else None)
        target = slot or address or "the host"
        try:
            async with asyncio.timeout(timeout):
                provider = await self._providers.get(platform)
                machines = await self._observe(provider, owner)
                machine = _pick(machines, slot, address, owner)
                if machine is None:
                    zero = Metric(label="state", value=0.0, min=0.0, max=1.0)
                    text = f"no machine for {target} on platform {spec.platform}"
                    return done(CheckState.CRITICAL, text, [zero])
                metrics = [Metric(label="state", value=_up(machine), min=0.0, max=1.0)]
                if spec.metrics:
                    read = await provider.metrics(machine, spec.metrics)
                    metrics += [m for m in read if m.label != "state"]
        except TimeoutError:
            text = f"platform {spec.platform} did not answer within {timeout:g}s"
            return done(CheckState.UNKNOWN, text)
        except UnknownKind:
            known = ", ".join(PROVIDERS.kinds()) or "none"
            text = f"no provider {platform.get('provider')!r} (installed: {known})"
            return done(CheckState.UNKNOWN, text)
        except ProviderError as exc:
            code = f"{exc.code}: " if exc.code and exc.code not in exc.message else ""
            return done(CheckState.UNKNOWN, f"platform {spec.platform}: {code}{exc.message}")
        state = STATES.get(machine.state, CheckState.UNKNOWN)
        details = ", ".join(x for x in (machine.cloud_id, machine.size) if x)
        text = f"{machine.slot or target} {machine.state} ({details})"
        got = {m.label for m in metrics}
        missing = [name for name in spec.metrics if name not in got]
        note = "no data from the platform for: " + ", ".join(missing) if missing else ""
        return done(state, text, metrics, note)

    def _observe(self, provider: Provider, owner: str) -> Awaitable[Sequence[Machine]]:
        """One observation of the platform, shared by the checks that ask meanwhile."""
        key = id(provider)
        task = self._observing.get(key)
        if task is None:
            task = self._observing[key] = asyncio.ensure_future(provider.observe(owner))
            task.add_done_callback(lambda t: self._observed(key, t))
        # A check that times out stops waiting; the others keep the shared call.
        return asyncio.shield(task)

    def _observed(self, key: int, task: asyncio.Task[Sequence[Machine]]) -> None:
        if self._observing.get(key) is task:
            del self._observing[key]
        if not task.cancelled():
            task.exception()  # retrieved: every waiter may have timed out already

    async def aclose(self) -> None:
        for task in list(self._observing.values()):
            task.cancel()
        if self._own:
            await self._providers.aclose()


def _pick(
    machines: Sequence[Machine], slot: str | None, address: str, owner: str
) -> Machine | None:
    """The owned machine of ``slot`` (or at ``address``), the likeliest when several."""
    ours = [m for m in machines if m.owner and (m.owner == owner or not owner)]
    if slot:
        found = [m for m in ours if m.slot == slot]
    else:
        found = [m for m in ours if address and address in (m.address, m.public_address)]
    if not found:
        return None
    return min(found, key=lambda m: (_RANK.get(m.state, 4), -(m.created_at or 0.0)))


def _up(machine: Machine) -> float:
    return 1.0 if machine.state == "running" else 0.0


__all__ = ["PlatformCheck", "PlatformExecutor"]
