"""What an executor is, and the registry that finds one by check kind.

An executor runs one kind of check (``plugin``, ``tcp``, ...) against one address and
returns a `CheckOutcome`. A failing target is a result, not an error: executors return
CRITICAL or UNKNOWN with a Nagios-style line ("TCP CRITICAL - connection refused on
127.0.0.1:22") and never raise for it. Errors here are about the registry itself:

    WatchkeeperError
     └── ExecutorError            the executor registry cannot do what was asked
          ├── ExecutorAlreadyRegistered   two executors claim one kind
          └── UnknownCheckKind            no executor, built-in or installed, runs a kind

Built-in executors register when `watchkeeper.worker.executors` is imported; third-party
ones come in through the ``watchkeeper.executors`` entry point group, loaded on first miss.
"""

from __future__ import annotations

import abc
import inspect
import logging
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, ClassVar, Generic, Protocol, TypeVar, cast

from pydantic import BaseModel, ValidationError

from watchkeeper.errors import WatchkeeperError
from watchkeeper.results import CheckOutcome, CheckState

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "watchkeeper.executors"


class ExecutorError(WatchkeeperError):
    """The executor registry cannot do what was asked."""


class ExecutorAlreadyRegistered(ExecutorError):
    """Two executors claim the same check kind."""


class UnknownCheckKind(ExecutorError):
    """No executor runs this kind of check."""


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


E = TypeVar("E", bound=type[Executor])
M = TypeVar("M", bound=BaseModel)

#: Check kind -> executor class. Use `register` to add, `get_executor` to look up.
EXECUTORS: dict[str, type[Executor]] = {}
_entry_points_loaded = False


def register(cls: E) -> E:
    """Class decorator: add an executor under its ``kind``; a second claim raises."""
    kind = getattr(cls, "kind", None)
    if not isinstance(kind, str) or not kind:
        raise ExecutorError(f"{cls.__qualname__} has no kind: set `kind: ClassVar[str]`")
    if not inspect.iscoroutinefunction(getattr(cls, "run", None)):
        raise ExecutorError(f"{cls.__qualname__}.run must be an async method")
    config = getattr(cls, "Config", None)
    if not (isinstance(config, type) and issubclass(config, BaseModel)):
        raise ExecutorError(f"{cls.__qualname__}.Config must be the pydantic model of its spec")
    existing = EXECUTORS.get(kind)
    if existing is not None and existing is not cls:
        raise ExecutorAlreadyRegistered(
            f"check kind {kind!r} is already run by {_name(existing)}; "
            f"{_name(cls)} cannot claim it too"
        )
    EXECUTORS[kind] = cls
    return cls


def get_executor(kind: str) -> type[Executor]:
    """Return the executor class for ``kind``, loading installed plugins on a first miss."""
    if kind not in EXECUTORS:
        load_entry_points()
    try:
        return EXECUTORS[kind]
    except KeyError:
        known = ", ".join(sorted(EXECUTORS)) or "none"
        raise UnknownCheckKind(
            f"no executor runs checks of kind {kind!r} (known kinds: {known}; third-party "
            f"executors register through the {ENTRY_POINT_GROUP!r} entry point group)"
        ) from None


def load_entry_points(*, force: bool = False) -> list[str]:
    """Register executors from installed packages once; return the kinds added.

    One broken plugin must not stop the worker from running every other check, so a
    plugin that fails to load or clashes with a registered kind is logged and skipped.
    """
    global _entry_points_loaded
    if _entry_points_loaded and not force:
        return []
    _entry_points_loaded = True
    added = []
    for point in entry_points(group=ENTRY_POINT_GROUP):
        extra = {"action": "executor_plugin_skipped", "entry_point": point.value}
        try:
            cls = point.load()
            if getattr(cls, "kind", None) != point.name:
                raise ExecutorError(f"its kind is {getattr(cls, 'kind', None)!r}")
            register(cls)
        except Exception as exc:
            logger.warning(
                "executor plugin %s (%s) skipped: %s", point.name, point.value, exc, extra=extra
            )
            continue
        added.append(point.name)
    return added


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
    """

    def __init__(self, factories: dict[str, Callable[[], Executor]] | None = None) -> None:
        self._factories = dict(factories or {})
        self._instances: dict[str, Executor] = {}

    def get(self, kind: str) -> Executor:
        """Return the shared executor for ``kind``; raise `UnknownCheckKind`."""
        instance = self._instances.get(kind)
        if instance is None:
            factory = self._factories.get(kind) or get_executor(kind)
            instance = self._instances[kind] = factory()
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
        except UnknownCheckKind as exc:
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


def _name(cls: type[Any]) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"
