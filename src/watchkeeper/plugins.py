"""One registry for every extension point: check kinds, channels, actions, providers.

    Registry[P]
      register(cls)     class decorator; a second class claiming a kind raises
      get(kind)         the class, loading built-ins and installed plugins on first use
      kinds(), configs(), union()
                        what the document is built from: every kind's pydantic ``Config``

A plugin is a class with ``kind: ClassVar[str]`` and ``Config: ClassVar[type[BaseModel]]``,
the model of its part of the document, whose ``kind`` field is ``Literal[kind]``; the
plugin owns its schema, so the document's unions (`watchkeeper.document.models`) are made
from the registries and a kind installed as a package validates, appears in the JSON
Schema and runs. Built-in plugins are modules named below (imported on first use, which is
how a registry reaches code in packages above this one without importing them);
third-party ones come through an entry-point group, whose entry names must be the kinds::

    [project.entry-points."watchkeeper.executors"]
    snmp = "watchkeeper_snmp:SnmpExecutor"

A plugin that fails to import, or whose kind is not its entry name, is logged and skipped:
one broken package must not stop every other check.

    WatchkeeperError
     └── PluginError              a registry cannot do what was asked
          ├── AlreadyRegistered   two classes claim one kind
          └── UnknownKind         nothing, built in or installed, provides a kind
"""

from __future__ import annotations

import importlib
import inspect
import logging
import typing
from collections.abc import Callable, Iterator, Sequence
from importlib.metadata import entry_points
from typing import Annotated, Any, ClassVar, Generic, Literal, Protocol, TypeVar, Union

from pydantic import BaseModel, Field

from watchkeeper.errors import WatchkeeperError

logger = logging.getLogger(__name__)


class PluginError(WatchkeeperError):
    """A plugin registry cannot do what was asked."""


class AlreadyRegistered(PluginError):
    """Two plugin classes claim the same kind."""


class UnknownKind(PluginError):
    """No plugin provides this kind."""


class Plugin(Protocol):
    """What every registry holds: a kind and the document model of its configuration."""

    kind: ClassVar[str]
    Config: ClassVar[type[BaseModel]]


P = TypeVar("P", bound=Plugin)
C = TypeVar("C", bound=type[Any])


def config_kind(config: type[BaseModel], key: str = "kind") -> str | None:
    """The value of a config model's ``kind: Literal[...]`` field (or ``key``'s), or None."""
    field = config.model_fields.get(key)
    if field is None or typing.get_origin(field.annotation) is not Literal:
        return None
    values = typing.get_args(field.annotation)
    return str(values[0]) if len(values) == 1 else None


class Registry(Generic[P]):
    """Kind -> plugin class for one extension point (``what`` names it in messages).

    ``methods`` are the async methods every plugin of this point must have; ``missing``
    how an unknown kind is reported (``"no executor runs checks of kind {kind!r}"``); ``key``
    the field of ``Config`` that carries the kind (``kind``, or ``provider``); ``builtins``
    the modules whose import registers the built-in plugins; ``group`` the entry-point
    group third parties register in. Kinds are listed built-ins first, in the order of
    ``builtins``, then the others in the order they registered.
    """

    def __init__(
        self,
        what: str,
        *,
        group: str,
        builtins: Sequence[str] = (),
        methods: Sequence[str] = (),
        missing: str | None = None,
        key: str = "kind",
        entry_points: Callable[[str], Sequence[Any]] | None = None,
    ) -> None:
        self.what = what
        #: How `UnknownKind` opens, with ``{kind!r}`` in it.
        self.missing = missing or f"no {what} {{kind!r}}"
        #: The field of ``Config`` whose literal value is the kind (the union's tag).
        self.key = key
        self.group = group
        self.builtins = tuple(builtins)
        self.methods = tuple(methods)
        self._entry_points = entry_points or _installed
        self._plugins: dict[str, type[P]] = {}
        self._builtins_loaded = False
        self._installed_loaded = False

    # --- registration ---------------------------------------------------------------------

    def register(self, cls: C) -> C:
        """Class decorator: add ``cls`` under its ``kind``; a second claim on it raises."""
        kind = getattr(cls, "kind", None)
        name = cls.__qualname__
        if not isinstance(kind, str) or not kind:
            raise PluginError(f"{name} has no kind: set `kind: ClassVar[str]`")
        for method in self.methods:
            if not inspect.iscoroutinefunction(getattr(cls, method, None)):
                raise PluginError(f"{name}.{method} must be an async method")
        config = getattr(cls, "Config", None)
        if not (isinstance(config, type) and issubclass(config, BaseModel)):
            raise PluginError(f"{name}.Config must be the pydantic model of its configuration")
        declared = config_kind(config, self.key)
        if declared != kind:
            raise PluginError(
                f"{name}.Config must have the field `{self.key}: Literal[{kind!r}]` "
                f"(it has {declared!r}), so the document can tell the kinds apart"
            )
        existing = self._plugins.get(kind)
        if existing is not None and existing is not cls:
            raise AlreadyRegistered(
                f"{self.what} {kind!r} is already provided by {_path(existing)}; "
                f"{_path(cls)} cannot claim it too"
            )
        self._plugins[kind] = cls
        return cls

    def unregister(self, kind: str) -> None:
        """Forget a kind (tests that register their own plugins clean up with this)."""
        self._plugins.pop(kind, None)

    # --- loading --------------------------------------------------------------------------

    def load(self) -> None:
        """Import the built-in modules, then the installed plugins; each once per process."""
        if not self._builtins_loaded:
            self._builtins_loaded = True
            for module in self.builtins:
                importlib.import_module(module)
        if not self._installed_loaded:
            self._installed_loaded = True
            self.load_installed()

    def load_installed(self) -> list[str]:
        """Register the plugins of the entry-point group; the kinds added."""
        added = []
        for point in sorted(self._entry_points(self.group), key=lambda p: str(p.name)):
            try:
                cls = point.load()
                if getattr(cls, "kind", None) != point.name:
                    raise PluginError(f"its kind is {getattr(cls, 'kind', None)!r}")
                if self._plugins.get(point.name) is cls:
                    continue  # registered already (loaded twice, or imported by hand)
                self.register(cls)
            except Exception as exc:
                logger.warning(
                    "%s plugin %s (%s) skipped: %s",
                    self.what,
                    point.name,
                    point.value,
                    exc,
                    extra={"action": "plugin_skipped", "entry_point": point.value},
                )
                continue
            added.append(str(point.name))
        return added

    # --- lookup ---------------------------------------------------------------------------

    def get(self, kind: str) -> type[P]:
        """The class of ``kind``; `UnknownKind` names the known ones and the group."""
        if kind not in self._plugins:
            self.load()
        try:
            return self._plugins[kind]
        except KeyError:
            known = ", ".join(sorted(self._plugins)) or "none"
            raise UnknownKind(
                self.missing.format(kind=kind) + f" (known kinds: {known}; third-party "
                f"ones register through the {self.group!r} entry point group)"
            ) from None

    def __contains__(self, kind: object) -> bool:
        self.load()
        return kind in self._plugins

    def __iter__(self) -> Iterator[str]:
        return iter(self.kinds())

    def kinds(self) -> tuple[str, ...]:
        """Every kind: the built-ins in the order listed, then the others as registered."""
        return tuple(kind for kind, _ in self.items())

    def items(self) -> list[tuple[str, type[P]]]:
        self.load()
        rank = {module: i for i, module in enumerate(self.builtins)}
        last = len(rank)
        found = list(self._plugins.items())  # sorted() is stable: the rest keep their order
        return sorted(found, key=lambda item: rank.get(item[1].__module__, last))

    def configs(self) -> list[type[BaseModel]]:
        """Every kind's ``Config`` model, in registration order."""
        return [cls.Config for _, cls in self.items()]

    def union(self) -> Any:
        """The tagged union of every ``Config``, discriminated by ``kind``, for the document."""
        members = tuple(self.configs())
        if not members:
            raise PluginError(f"no {self.what} is registered")
        return Annotated[Union[members], Field(discriminator=self.key)]  # noqa: UP007


def _installed(group: str) -> Sequence[Any]:
    return list(entry_points(group=group))


def _path(cls: type[Any]) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


# --- the extension points -----------------------------------------------------------------
# Adding a built-in plugin: write its module (the class, decorated with the registry's
# `register`, and its Config) and name the module here. That is the one registration line.

#: Check kinds, run by workers (`watchkeeper.worker.executors`).
CHECKS: Registry[Plugin] = Registry(
    "check kind",
    group="watchkeeper.executors",
    methods=("run", "aclose"),
    missing="no executor runs checks of kind {kind!r}",
    builtins=(
        "watchkeeper.worker.executors.plugin",
        "watchkeeper.worker.executors.tcp",
        "watchkeeper.worker.executors.http",
        "watchkeeper.worker.executors.ping",
        "watchkeeper.worker.executors.ssh",
        "watchkeeper.worker.executors.agent",
        "watchkeeper.worker.executors.platform",
    ),
)
#: Notification channels, delivered by the manager (`watchkeeper.notify.channels`).
CHANNELS: Registry[Plugin] = Registry(
    "notification channel",
    group="watchkeeper.channels",
    methods=("deliver",),
    missing="no notification channel delivers kind {kind!r}",
    builtins=(
        "watchkeeper.notify.channels.webhook",
        "watchkeeper.notify.channels.email",
        "watchkeeper.notify.channels.command",
    ),
)
#: Remediation actions, run by workers (`watchkeeper.worker.actions`).
ACTIONS: Registry[Plugin] = Registry(
    "remediation action",
    group="watchkeeper.actions",
    methods=("run", "aclose"),
    missing="unknown action kind {kind!r}",
    builtins=(
        "watchkeeper.worker.actions.ssh",
        "watchkeeper.worker.actions.command",
        "watchkeeper.worker.actions.http",
        "watchkeeper.worker.actions.platform",
    ),
)
#: Infrastructure providers, used by the workers of a platform's zone
#: (`watchkeeper.infra.providers`).
PROVIDERS: Registry[Plugin] = Registry(
    "infrastructure provider",
    group="watchkeeper.providers",
    methods=("aclose",),
    missing="no infrastructure provider {kind!r}",
    key="provider",
    builtins=(
        "watchkeeper.infra.providers.ec2",
        "watchkeeper.infra.providers.libcloud",
        "watchkeeper.infra.providers.lxc",
    ),
)

__all__ = [
    "ACTIONS",
    "CHANNELS",
    "CHECKS",
    "PROVIDERS",
    "AlreadyRegistered",
    "Plugin",
    "PluginError",
    "Registry",
    "UnknownKind",
    "config_kind",
]
