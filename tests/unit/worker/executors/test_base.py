"""Executors: the built-ins in the check registry, unknown kinds, one instance per kind."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, ClassVar, Literal

import pytest
from pydantic import BaseModel

from watchkeeper.errors import WatchkeeperError
from watchkeeper.plugins import CHECKS, AlreadyRegistered, UnknownKind
from watchkeeper.results import CheckOutcome, CheckState
from watchkeeper.worker.executors import (
    Executors,
    HttpExecutor,
    PingExecutor,
    PluginExecutor,
    TcpExecutor,
    base,
    get_executor,
)
from watchkeeper.worker.executors.base import validate_spec


class FakeConfig(BaseModel):
    kind: Literal["fake"]
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


@pytest.fixture(autouse=True)
def registry() -> Iterator[None]:
    """Each test gets the built-in registry back, whatever it registered."""
    saved = dict(CHECKS._plugins)
    yield
    CHECKS._plugins.clear()
    CHECKS._plugins.update(saved)


def test_built_in_executors_are_registered() -> None:
    assert {kind: CHECKS.get(kind) for kind in ("plugin", "tcp", "http", "ping")} == {
        "plugin": PluginExecutor,
        "tcp": TcpExecutor,
        "http": HttpExecutor,
        "ping": PingExecutor,
    }
    assert get_executor("tcp") is TcpExecutor
    assert CHECKS.kinds() == ("plugin", "tcp", "http", "ping", "ssh", "agent", "platform")


def test_register_refuses_a_second_claim_on_a_kind() -> None:
    class Impostor(FakeExecutor):
        kind: ClassVar[str] = "tcp"
        Config: ClassVar[type[BaseModel]] = TcpExecutor.Config

    with pytest.raises(AlreadyRegistered, match=r"'tcp' is already provided by .*TcpExecutor"):
        CHECKS.register(Impostor)
    assert CHECKS.get("tcp") is TcpExecutor
    assert CHECKS.register(TcpExecutor) is TcpExecutor  # the same class again is harmless


def test_unknown_kind_names_the_known_ones() -> None:
    with pytest.raises(UnknownKind) as caught:
        get_executor("snmp")
    assert isinstance(caught.value, WatchkeeperError)
    assert "'snmp'" in caught.value.message
    assert "http, ping, platform, plugin, ssh, tcp" in caught.value.message
    assert CHECKS.group in caught.value.message


def test_validate_spec_turns_a_bad_spec_into_unknown() -> None:
    result = validate_spec(FakeConfig, {"kind": "fake", "answer": "many"}, "FAKE")
    assert isinstance(result, CheckOutcome)
    assert result.state is CheckState.UNKNOWN
    assert result.output.startswith("FAKE UNKNOWN - invalid check: answer: ")
    assert validate_spec(FakeConfig, {"kind": "fake"}, "FAKE") == FakeConfig(kind="fake")


async def test_executors_dispatches_by_kind_and_shares_instances() -> None:
    CHECKS.register(FakeExecutor)
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


async def test_executors_report_an_unknown_kind_as_unknown() -> None:
    executors = Executors()
    for check in ({"kind": "snmp"}, {}):
        result = await executors.run(check, address="192.0.2.1", timeout=1)
        assert result.state is CheckState.UNKNOWN
        assert "no executor runs checks of kind" in result.output


async def test_a_crashing_executor_is_unknown_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    class BuggyConfig(BaseModel):
        kind: Literal["buggy"]

    class Buggy(FakeExecutor):
        kind: ClassVar[str] = "buggy"
        Config: ClassVar[type[BaseModel]] = BuggyConfig

        async def run(
            self,
            check: dict[str, Any],
            *,
            address: str,
            timeout: float,  # noqa: ASYNC109
        ) -> CheckOutcome:
            raise ZeroDivisionError("oops")

    CHECKS.register(Buggy)
    executors = Executors()
    with caplog.at_level(logging.ERROR, logger=base.__name__):
        result = await executors.run({"kind": "buggy"}, address="192.0.2.1", timeout=1)
    assert result.state is CheckState.UNKNOWN
    assert result.output == "UNKNOWN - buggy executor failed: ZeroDivisionError('oops')"
    (record,) = caplog.records
    assert record.action == "executor_crashed"  # type: ignore[attr-defined]
