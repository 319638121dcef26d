"""Password hashing (argon2id) and the rules of new passwords."""

from __future__ import annotations

import pytest

from watchkeeper.web.security.passwords import (
    MIN_PASSWORD_LENGTH,
    Passwords,
    check_password_rules,
    generate_password,
)

FAST = Passwords(time_cost=1, memory_cost=8, parallelism=1)


def test_hash_and_verify_round_trip() -> None:
    hashed = FAST.hash("correct horse battery")
    assert hashed.startswith("$argon2id$")
    assert "correct horse" not in hashed
    assert FAST.verify(hashed, "correct horse battery")
    assert not FAST.verify(hashed, "correct horse batterY")
    assert FAST.hash("correct horse battery") != hashed  # salted
    assert not FAST.verify("not a hash", "x")


def test_production_parameters_and_rehash() -> None:
    default = Passwords()
    assert default.time_cost >= 2 and default.memory_cost >= 19 * 1024
    cheap = FAST.hash("pw")
    assert default.verify(cheap, "pw")  # parameters travel with the hash
    assert default.needs_rehash(cheap) and not FAST.needs_rehash(cheap)
    assert default.needs_rehash("garbage")


def test_burn_does_not_raise() -> None:
    FAST.burn("anything")


def test_generated_passwords_pass_the_rules_and_differ() -> None:
    first, second = generate_password(), generate_password()
    check_password_rules(first)
    assert first != second and len(first) >= 20


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("x" * (MIN_PASSWORD_LENGTH - 1), "at least"),
        ("x" * 2000, "at most"),
        (" leading-space-password", "white space"),
    ],
)
def test_rules(password: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_password_rules(password)
