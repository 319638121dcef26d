"""What an action is, and how a worker finds the one of an action's kind.

Actions are the plugins of `watchkeeper.plugins.ACTIONS` (``@ACTIONS.register``; the
``watchkeeper.actions`` entry point group for third parties).

An action changes something to fix a problem (restart a service, call a deploy hook) and
reports how it went as a `CheckOutcome`: OK when it succeeded, CRITICAL when it failed,
with the command's (or the endpoint's) output. Like executors, actions return failures
and never raise for them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, cast

from pydantic import BaseModel, ValidationError

from watchkeeper.plugins import ACTIONS, UnknownKind
from watchkeeper.results import CheckOutcome, CheckState
from watchkeeper.worker.executors import Executors

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionTarget:
    """Where an action acts: the remediated check's host, and the platform if any."""

    host: str
    service: str | None = None
    address: str = ""
    #: Seconds the action may take.
    timeout: float = 60.0
    #: The document's platform object, for platform actions.
    platform: dict[str, Any] | None = None
    #: The manager's owner id: platform actions touch only machines tagged with it.
    owner: str = ""


class Action(Protocol):
    """Runs actions of one kind; one instance per worker, `run` concurrently, `aclose` once."""

    kind: ClassVar[str]
    #: The document model of the action spec; `Actions.run` validates with it.
    Config: ClassVar[type[BaseModel]]

    def __init__(self, executors: Executors) -> None: ...

    async def run(self, spec: Any, target: ActionTarget) -> CheckOutcome:
        """Carry out the validated ``spec`` on ``target``; return (not raise) a failure."""
        ...

    async def aclose(self) -> None: ...


def succeeded(output: str, *, long_output: str = "", duration: float = 0.0) -> CheckOutcome:
    return CheckOutcome(
        state=CheckState.OK, output=output, long_output=long_output, duration=duration
    )


def failed(output: str, *, long_output: str = "", duration: float = 0.0) -> CheckOutcome:
    return CheckOutcome(
        state=CheckState.CRITICAL, output=output, long_output=long_output, duration=duration
    )


class Actions:
    """One instance of each action kind, made on first use, sharing the worker's executors.

    The ssh and command actions borrow the ssh and plugin executors, so an action reuses
    the SSH connections (and known_hosts) the checks of the same host already hold.
    ``factories`` overrides how a kind is made (tests).
    """

    def __init__(
        self,
        executors: Executors | None = None,
        factories: dict[str, Callable[[], Action]] | None = None,
    ) -> None:
        #: Executors made here (none given) are closed here; given ones by their owner.
        self._own_executors = executors is None
        self.executors = executors or Executors()
        self._factories = dict(factories or {})
        self._instances: dict[str, Action] = {}

    def get(self, kind: str) -> Action | None:
        instance = self._instances.get(kind)
        if instance is None:
            factory = self._factories.get(kind)
            if factory is None:
                try:
                    cls = cast("type[Action]", ACTIONS.get(kind))
                except UnknownKind:
                    return None
                instance = cls(self.executors)
            else:
                instance = factory()
            self._instances[kind] = instance
        return instance

    async def run(self, spec: dict[str, Any], target: ActionTarget) -> CheckOutcome:
        """Run an action spec (``{"kind": ..., ...}``); an unknown or invalid one fails."""
        kind = str(spec.get("kind"))
        action = self.get(kind)
        if action is None:
            known = ", ".join(sorted(ACTIONS.kinds())) or "none"
            return failed(f"ACTION FAILED - unknown action kind {kind!r} (known: {known})")
        try:
            config = action.Config.model_validate(spec)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'action'}: {e['msg']}"
                for e in exc.errors()
            )
            return failed(f"ACTION FAILED - invalid {kind} action: {problems}")
        try:
            return await action.run(config, target)
        except Exception as exc:  # a bug in one action must not take the worker down
            logger.exception(
                "action %s crashed", kind, extra={"action": "remediation_action_crashed"}
            )
            return failed(f"ACTION FAILED - {kind} action failed: {exc!r}")

    async def aclose(self) -> None:
        instances, self._instances = list(self._instances.values()), {}
        for instance in instances:
            await instance.aclose()
        if self._own_executors:
            await self.executors.aclose()
