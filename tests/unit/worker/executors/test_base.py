"""The executor registry: registration, duplicates, unknown kinds, entry-point plugins."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

from watchkeeper.errors import WatchkeeperError
from watchkeeper.results import CheckOutcome, CheckState
from watchkeeper.worker.executors import (
    ENTRY_POINT_GROUP,
    EXECUTORS,
    ExecutorAlreadyRegistered,
    ExecutorError,
    Executors,
    HttpExecutor,
    PingExecutor,
    PluginExecutor,
    TcpExecutor,
    UnknownCheckKind,
    base,
    get_executor,
    load_entry_points,
    register,
)
from watchkeeper.worker.executors.base import validate_spec


class FakeConfig(BaseModel):
    kind: str
    answer: int = 42


class FakeExecutor:
    """A third-party executor, as an entry point would deliver it."""

    kind: ClassVar[str] = "fake"
    Config: ClassVar[type[BaseModel]] = FakeConfig
    closed = 0

    async def run(
        self,
        check: dict[str, Any],
        *,
        address: str,
        timeout: float,  # noqa: ASYNC109
    ) -> CheckOutcome:
        return CheckOutcome(state=CheckState.OK, output=f"FAKE OK - {address} {check}")

    async def aclose(self) -> None:
        FakeExecutor.closed += 1


class WrongKind(FakeExecutor):
    kind: ClassVar[str] = "not-the-entry-point-name"


@pytest.fixture(autouse=True)
def registry() -> Iterator[None]:
    """Each test gets the built-in registry back, whatever it registered."""
    saved, loaded = dict(EXECUTORS), base._entry_points_loaded
    yield
    EXECUTORS.clear()
    EXECUTORS.update(saved)
    base._entry_points_loaded = loaded


def fake_entry_points(monkeypatch: pytest.MonkeyPatch, *points: tuple[str, str]) -> None:
    found = [EntryPoint(name=n, value=v, group=ENTRY_POINT_GROUP) for n, v in points]

    def entry_points(*, group: str) -> list[EntryPoint]:
        assert group == ENTRY_POINT_GROUP
        return found

    monkeypatch.setattr(base, "entry_points", entry_points)
    base._entry_points_loaded = False


def test_built_in_executors_are_registered() -> None:
    assert {kind: EXECUTORS[kind] for kind in ("plugin", "tcp", "http", "ping")} == {
        "plugin": PluginExecutor,
        "tcp": TcpExecutor,
        "http": HttpExecutor,
        "ping": PingExecutor,
    }
    assert get_executor("tcp") is TcpExecutor


def test_register_refuses_a_second_claim_on_a_kind() -> None:
    class Impostor(FakeExecutor):
        kind: ClassVar[str] = "tcp"

    with pytest.raises(ExecutorAlreadyRegistered, match=r"'tcp' is already run by .*TcpExecutor"):
        register(Impostor)
    assert EXECUTORS["tcp"] is TcpExecutor
    assert register(TcpExecutor) is TcpExecutor  # registering the same class again is harmless


def test_register_wants_a_kind_an_async_run_and_a_config() -> None:
    class NoKind:
        async def run(self) -> None: ...

    class SyncRun:
        kind = "sync"

        def run(self) -> None: ...

    class NoConfig:
        kind = "no-config"

        async def run(self) -> None: ...

    with pytest.raises(ExecutorError, match="has no kind"):
        register(NoKind)  # type: ignore[type-var]
    with pytest.raises(ExecutorError, match="must be an async method"):
        register(SyncRun)  # type: ignore[type-var]
    with pytest.raises(ExecutorError, match="Config must be the pydantic model"):
        register(NoConfig)  # type: ignore[type-var]
    assert "no-config" not in EXECUTORS


def test_unknown_kind_names_the_known_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_entry_points(monkeypatch)
    with pytest.raises(UnknownCheckKind) as caught:
        get_executor("snmp")
    assert isinstance(caught.value, WatchkeeperError)
    assert "'snmp'" in caught.value.message
    assert "http, ping, plugin, ssh, tcp" in caught.value.message
    assert ENTRY_POINT_GROUP in caught.value.message


def test_entry_point_executor_is_loaded_on_first_miss(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_entry_points(monkeypatch, ("fake", f"{__name__}:FakeExecutor"))
    assert get_executor("fake") is FakeExecutor
    assert load_entry_points() == []  # once per process


def test_broken_entry_points_are_skipped_and_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fake_entry_points(
        monkeypatch,
        ("missing", "no_such_module_for_watchkeeper:Executor"),
        ("wrong", f"{__name__}:WrongKind"),
        ("tcp", f"{__name__}:WrongKind"),
        ("fake", f"{__name__}:FakeExecutor"),
    )
    with caplog.at_level(logging.WARNING, logger=base.__name__):
        assert load_entry_points() == ["fake"]
    skipped = [r.getMessage() for r in caplog.records]
    assert len(skipped) == 3
    assert all(getattr(r, "action", None) == "executor_plugin_skipped" for r in caplog.records)
    assert "missing" in skipped[0]
    assert "its kind is 'not-the-entry-point-name'" in skipped[1]
    assert EXECUTORS["tcp"] is TcpExecutor


def test_validate_spec_turns_a_bad_spec_into_unknown() -> None:
    result = validate_spec(FakeConfig, {"kind": "fake", "answer": "many"}, "FAKE")
    assert isinstance(result, CheckOutcome)
    assert result.state is CheckState.UNKNOWN
    assert result.output.startswith("FAKE UNKNOWN - invalid check: answer: ")
    assert validate_spec(FakeConfig, {"kind": "fake"}, "FAKE") == FakeConfig(kind="fake")


async def test_executors_dispatches_by_kind_and_shares_instances() -> None:
    register(FakeExecutor)
    executors = Executors()
    result = await executors.run({"kind": "fake"}, address="192.0.2.1", timeout=1)
    assert result.output == "FAKE OK - 192.0.2.1 {'kind': 'fake'}"
    assert executors.get("fake") is executors.get("fake")
    before = FakeExecutor.closed
    await executors.aclose()
    assert FakeExecutor.closed == before + 1


async def test_executors_factories_override_construction() -> None:
    made = TcpExecutor(verify=False)
    executors = Executors({"tcp": lambda: made})
    assert executors.get("tcp") is made
    await executors.aclose()


async def test_executors_report_an_unknown_kind_as_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_entry_points(monkeypatch)
    executors = Executors()
    for check in ({"kind": "snmp"}, {}):
        result = await executors.run(check, address="192.0.2.1", timeout=1)
        assert result.state is CheckState.UNKNOWN
        assert "no executor runs checks of kind" in result.output


async def test_a_crashing_executor_is_unknown_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    class Buggy(FakeExecutor):
        kind: ClassVar[str] = "buggy"

        async def run(
            self,
            check: dict[str, Any],
            *,
            address: str,
            timeout: float,  # noqa: ASYNC109
        ) -> CheckOutcome:
            raise ZeroDivisionError("oops")

    register(Buggy)
    executors = Executors()
    with caplog.at_level(logging.ERROR, logger=base.__name__):
        result = await executors.run({"kind": "buggy"}, address="192.0.2.1", timeout=1)
    assert result.state is CheckState.UNKNOWN
    assert result.output == "UNKNOWN - buggy executor failed: ZeroDivisionError('oops')"
    (record,) = caplog.records
    assert record.action == "executor_crashed"  # type: ignore[attr-defined]
