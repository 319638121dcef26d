"""The plugin registry: registration, duplicates, unknown kinds, entry points, unions."""

from __future__ import annotations

import logging
import typing
from importlib.metadata import EntryPoint
from typing import Any, ClassVar, Literal

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from watchkeeper import plugins
from watchkeeper.errors import WatchkeeperError
from watchkeeper.plugins import AlreadyRegistered, PluginError, Registry, UnknownKind

GROUP = "watchkeeper.tests"


class ProbeConfig(BaseModel):
    kind: Literal["probe"]
    answer: int = 42


class Probe:
    """A third-party plugin, as an entry point would deliver it."""

    kind: ClassVar[str] = "probe"
    Config: ClassVar[type[BaseModel]] = ProbeConfig

    async def run(self) -> str:
        return "ran"


class OtherConfig(BaseModel):
    kind: Literal["other"]
    size: int


class Other(Probe):
    kind: ClassVar[str] = "other"
    Config: ClassVar[type[BaseModel]] = OtherConfig


class WrongKind(Probe):
    kind: ClassVar[str] = "not-the-entry-point-name"


def registry(*points: tuple[str, str]) -> Registry[Any]:
    found = [EntryPoint(name=n, value=v, group=GROUP) for n, v in points]

    def entry_points(group: str) -> list[EntryPoint]:
        assert group == GROUP
        return found

    return Registry("test plugin", group=GROUP, methods=("run",), entry_points=entry_points)


def test_register_refuses_a_second_claim_on_a_kind() -> None:
    reg = registry()
    assert reg.register(Probe) is Probe

    class Impostor(Probe):
        pass

    with pytest.raises(AlreadyRegistered, match=r"'probe' is already provided by .*Probe"):
        reg.register(Impostor)
    assert reg.get("probe") is Probe
    assert reg.register(Probe) is Probe  # the same class again is harmless


def test_register_wants_a_kind_async_methods_and_a_config_that_carries_the_kind() -> None:
    class NoKind:
        async def run(self) -> None: ...

    class SyncRun:
        kind = "sync"

        def run(self) -> None: ...

    class NoConfig:
        kind = "no-config"

        async def run(self) -> None: ...

    class LooseConfig(BaseModel):
        kind: str

    class Loose(Probe):
        kind: ClassVar[str] = "loose"
        Config: ClassVar[type[BaseModel]] = LooseConfig

    reg = registry()
    with pytest.raises(PluginError, match="has no kind"):
        reg.register(NoKind)
    with pytest.raises(PluginError, match="must be an async method"):
        reg.register(SyncRun)
    with pytest.raises(PluginError, match="Config must be the pydantic model"):
        reg.register(NoConfig)
    with pytest.raises(PluginError, match=r"`kind: Literal\['loose'\]`"):
        reg.register(Loose)
    assert reg.kinds() == ()


def test_unknown_kind_names_the_known_ones_and_the_group() -> None:
    reg = registry()
    reg.register(Probe)
    with pytest.raises(UnknownKind) as caught:
        reg.get("snmp")
    assert isinstance(caught.value, WatchkeeperError)
    assert "'snmp'" in caught.value.message and "probe" in caught.value.message
    assert GROUP in caught.value.message


def test_an_entry_point_plugin_is_loaded_on_first_use_and_once() -> None:
    reg = registry(("probe", f"{__name__}:Probe"))
    assert reg.get("probe") is Probe
    assert reg.load_installed() == []  # already registered: nothing new
    assert "probe" in reg


def test_broken_entry_points_are_skipped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    reg = registry(
        ("missing", "no_such_module_for_watchkeeper:Plugin"),
        ("wrong", f"{__name__}:WrongKind"),
        ("other", f"{__name__}:Other"),
        ("probe", f"{__name__}:Probe"),
    )
    reg.register(Other)  # a built-in claims "other": the entry point must not replace it

    class Impostor(Other):
        pass

    reg._entry_points = lambda group: [
        EntryPoint(name="missing", value="no_such_module_for_watchkeeper:Plugin", group=GROUP),
        EntryPoint(name="wrong", value=f"{__name__}:WrongKind", group=GROUP),
        EntryPoint(name="other", value=f"{__name__}:Impostor", group=GROUP),
        EntryPoint(name="probe", value=f"{__name__}:Probe", group=GROUP),
    ]
    globals()["Impostor"] = Impostor
    try:
        with caplog.at_level(logging.WARNING, logger=plugins.__name__):
            assert reg.load_installed() == ["probe"]
    finally:
        del globals()["Impostor"]
    skipped = sorted(r.getMessage() for r in caplog.records)
    assert len(skipped) == 3
    assert all(getattr(r, "action", None) == "plugin_skipped" for r in caplog.records)
    assert any("missing" in m for m in skipped)
    assert any("its kind is 'not-the-entry-point-name'" in m for m in skipped)
    assert any("already provided" in m for m in skipped)
    assert reg.get("other") is Other


def test_the_union_is_tagged_by_kind_in_registration_order() -> None:
    reg = registry()
    reg.register(Probe)
    reg.register(Other)
    union = reg.union()
    members = typing.get_args(typing.get_args(union)[0])
    assert members == (ProbeConfig, OtherConfig)
    adapter: TypeAdapter[Any] = TypeAdapter(union)
    assert adapter.validate_python({"kind": "other", "size": 3}) == OtherConfig(
        kind="other", size=3
    )
    with pytest.raises(ValidationError, match="does not match any of the expected tags"):
        adapter.validate_python({"kind": "nope"})


def test_built_ins_come_first_in_the_order_listed() -> None:
    assert plugins.CHECKS.kinds()[:6] == ("plugin", "tcp", "http", "ping", "ssh", "agent")
    assert plugins.CHANNELS.kinds()[:3] == ("webhook", "email", "command")
    assert plugins.ACTIONS.kinds()[:4] == ("ssh", "command", "http", "platform")
