"""The ``agent`` check: a plugin run by the Watchkeeper agent on the checked host itself.

An agent is an ordinary worker process installed on the host, whose key is enrolled with
``--agent-for HOST``. Routing, not this module, keeps the two apart: only a key enrolled
as that host's agent ever receives the host's agent jobs, and an agent key receives
nothing else. So here an agent check is simply a local plugin run, with the same
environment, process-group timeout and output parsing as the ``plugin`` executor.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, Field

from watchkeeper.document.fields import Command, PluginState, Strict
from watchkeeper.plugins import CHECKS
from watchkeeper.results import CheckOutcome
from watchkeeper.worker.executors.base import SpecExecutor
from watchkeeper.worker.executors.plugin import Outcomes, PluginExecutor


class AgentCheck(Strict):
    """Run a local check through the Watchkeeper agent installed on the host itself."""

    kind: Literal["agent"]
    command: Command
    timeout_state: PluginState | None = Field(
        default=None,
        description="As a plugin's: the state of a timeout (default: the document's, CRITICAL).",
    )
    out_of_bounds_state: PluginState | None = Field(
        default=None,
        description="As a plugin's: the state of an exit outside 0-3 (defaults as timeout_state).",
    )


@CHECKS.register
class AgentExecutor(SpecExecutor[AgentCheck]):
    """Runs ``command`` locally through a `PluginExecutor` (one shared, per agent)."""

    kind: ClassVar[str] = "agent"
    Config: ClassVar[type[BaseModel]] = AgentCheck
    label: ClassVar[str] = "AGENT"

    def __init__(self, *, plugins: PluginExecutor | None = None) -> None:
        self._plugins = plugins or PluginExecutor()

    async def check(
        self,
        spec: AgentCheck,
        *,
        address: str,
        timeout: float,  # noqa: ASYNC109
    ) -> CheckOutcome:
        return await self._plugins.run_command(
            spec.command, address=address, timeout=timeout, states=Outcomes.of(spec)
        )
