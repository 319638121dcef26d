"""What an executor is, and how a worker finds the one of a check's kind.

An executor runs one kind of check (``plugin``, ``tcp``, ...) against one address and
returns a `CheckOutcome`. A failing target is a result, not an error: executors return
CRITICAL or UNKNOWN with a Nagios-style line ("TCP CRITICAL - connection refused on
127.0.0.1:22") and never raise for it.

Executors are the plugins of `watchkeeper.plugins.CHECKS`: a class decorated with
``@CHECKS.register`` whose ``Config`` is the document model of its check, built in (named
in that registry) or installed through the ``watchkeeper.executors`` entry point group.
`Executors` keeps one instance per kind for a worker.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable
from typing import Any, ClassVar, Generic, Protocol, TypeVar, cast

from pydantic import BaseModel, ValidationError

from watchkeeper.infra.providers.cache import ProviderCache
from watchkeeper.plugins import CHECKS, UnknownKind
from watchkeeper.results import CheckOutcome, CheckState

logger = logging.getLogger(__name__)


class Executor(Protocol):
    """Runs checks of one kind.

    Lifecycle: a worker makes one instance per kind (constructors take keyword arguments
    with defaults only), calls `run` concurrently as often as it likes, then `aclose` once.
    """

    #: The check ``kind`` this executor runs; the registry key.
    kind: ClassVar[str]
    #: The document model of the check sub-spec; `run` validates with it.
    Config: ClassVar[type[BaseModel]]

    async def run(
        self,
        check: dict[str, Any],
        *,
        address: str,
        timeout: float,  # noqa: ASYNC109
    ) -> CheckOutcome:
        """Run ``check`` (the document's ``check`` object) against ``address``.

        Must return within about ``timeout`` seconds, and return (not raise) when the
        target fails or the spec is unusable.
        """
        ...

    async def aclose(self) -> None:
        """Release shared resources (connection pools); the executor is not used afterwards."""
        ...


M = TypeVar("M", bound=BaseModel)


def get_executor(kind: str) -> type[Executor]:
    """The executor class for ``kind``; `watchkeeper.plugins.UnknownKind` names the known."""
    return cast("type[Executor]", CHECKS.get(kind))


def validate_spec(config: type[M], check: dict[str, Any], name: str) -> M | CheckOutcome:
    """Validate a check spec, or return the UNKNOWN outcome that says why it is unusable.

    The manager validated the document already, so this only catches version skew
    between manager and worker; it must still not crash the worker.
    """
    try:
        return config.model_validate(check)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'check'}: {error['msg']}"
            for error in exc.errors()
        )
        return outcome(CheckState.UNKNOWN, f"{name} UNKNOWN - invalid check: {problems}")


class SpecExecutor(abc.ABC, Generic[M]):
    """Base of the built-in executors: validate the spec with ``Config``, then `check` it.

    Subclasses set ``kind``, ``Config`` and ``label`` (the word that opens their output
    line, as in ``TCP CRITICAL - ...``) and implement `check`; `aclose` does nothing unless
    they hold shared resources.
    """

    kind: ClassVar[str]
    Config: ClassVar[type[BaseModel]]
    label: ClassVar[str]

    async def run(
        self,
        check: dict[str, Any],
        *,
        address: str,
        timeout: float,  # noqa: ASYNC109
    ) -> CheckOutcome:
        spec = validate_spec(self.Config, check, self.label)
        if isinstance(spec, CheckOutcome):
            return spec
        return await self.check(cast(M, spec), address=address, timeout=timeout)

    @abc.abstractmethod
    async def check(self, spec: M, *, address: str, timeout: float) -> CheckOutcome:  # noqa: ASYNC109
        """Run one validated check against ``address``."""

    async def aclose(self) -> None:
        return None


def outcome(
    state: CheckState, output: str, *, duration: float = 0.0, **fields: Any
) -> CheckOutcome:
    """Shorthand used by every executor."""
    return CheckOutcome(state=state, output=output, duration=duration, **fields)


class Executors:
    """One instance of each executor kind, made on first use; the worker's entry point.

    ``factories`` overrides how a kind's executor is made (tests pass ``verify=False``).
    ``providers`` is the worker's one provider per platform: executors whose class says
    ``uses_providers`` (the ``platform`` check) are made with it, and the platform actions
    and infra jobs of the same worker use it too, so one platform has one API client and
    one rate limit per worker. It is closed with the executors.
    """

    def __init__(
        self,
        factories: dict[str, Callable[[], Executor]] | None = None,
        providers: ProviderCache | None = None,
    ) -> None:
        self._factories = dict(factories or {})
        self._instances: dict[str, Executor] = {}
        self.providers = providers or ProviderCache()

    def get(self, kind: str) -> Executor:
        """Return the shared executor for ``kind``; raise `UnknownKind`."""
        instance = self._instances.get(kind)
        if instance is None:
            factory = self._factories.get(kind)
            if factory is None:
                cls: Any = get_executor(kind)
                if getattr(cls, "uses_providers", False):
                    instance = cls(providers=self.providers)
                else:
                    instance = cls()
            else:
                instance = factory()
            self._instances[kind] = instance
        return instance

    async def run(
        self,
        check: dict[str, Any],
        *,
        address: str,
        timeout: float,  # noqa: ASYNC109
    ) -> CheckOutcome:
        """Run a check with the executor of its kind; an unknown kind is UNKNOWN."""
        kind = str(check.get("kind"))
        try:
            executor = self.get(kind)
        except UnknownKind as exc:
            return outcome(CheckState.UNKNOWN, f"UNKNOWN - {exc.message}")
        try:
            return await executor.run(check, address=address, timeout=timeout)
        except Exception as exc:  # a bug in one executor must not take the worker down
            logger.exception(
                "executor %s crashed", kind, extra={"action": "executor_crashed", "kind": kind}
            )
            return outcome(CheckState.UNKNOWN, f"UNKNOWN - {kind} executor failed: {exc!r}")

    async def aclose(self) -> None:
        instances, self._instances = list(self._instances.values()), {}
        for instance in instances:
            await instance.aclose()
        await self.providers.aclose()
