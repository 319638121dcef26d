"""``--manager``'s addresses: one or many, the job port by default, IPv6 in brackets."""

from __future__ import annotations

import pytest

from watchkeeper.addresses import join_host_port, parse_manager, parse_managers
from watchkeeper.errors import UsageError


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("m1", ("m1", 4730)),
        ("m1:4731", ("m1", 4731)),
        (" 10.0.0.1:4730 ", ("10.0.0.1", 4730)),
        ("[::1]:4731", ("::1", 4731)),
        ("[::1]", ("::1", 4730)),
        ("fe80::1", ("fe80::1", 4730)),  # a bare IPv6 address has no port
    ],
)
def test_a_manager_is_host_and_optional_port(value: str, parsed: tuple[str, int]) -> None:
    assert parse_manager(value) == parsed


@pytest.mark.parametrize("value", ["", ":4730", "m1:", "m1:x", "m1:0", "m1:65536", "m1:1:2"])
def test_a_bad_manager_names_the_flag_and_the_value(value: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_manager(value)
    assert caught.value.message == (
        f"--manager: expected HOST[:PORT] such as m1:4730, got {value!r}"
    )


def test_managers_come_comma_separated_or_repeated_in_order_each_once() -> None:
    assert parse_managers(["m1:4730, m2:4731", "m3", "m1"]) == [
        ("m1", 4730),
        ("m2", 4731),
        ("m3", 4730),
    ]
    with pytest.raises(UsageError, match="--manager: expected HOST"):
        parse_managers([" , "])


def test_a_manager_is_named_as_it_is_dialled() -> None:
    assert join_host_port("m1", 4730) == "m1:4730"
    assert join_host_port("::1", 4730) == "[::1]:4730"
