"""Password hashing with argon2id (argon2-cffi), and the rules a password must meet.

Hashes are self-describing (``$argon2id$v=19$m=...,t=...,p=...$salt$hash``), so a hash made
with older or cheaper parameters still verifies, and `Passwords.needs_rehash` tells the login
path to store a fresh one. Hashing costs ~0.1 s of CPU by design: callers on the event loop run
it in a thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

#: Shorter passwords are refused; long random ones are what `generate_password` gives.
MIN_PASSWORD_LENGTH = 10
#: Longer ones are refused too: nobody types them, and they only cost hashing time.
MAX_PASSWORD_LENGTH = 1024


def check_password_rules(password: str) -> None:
    """Raise ValueError saying what is wrong with ``password`` as a new password."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValueError(f"a password may have at most {MAX_PASSWORD_LENGTH} characters")
    if password != password.strip():
        raise ValueError("a password may not start or end with white space")


def generate_password() -> str:
    """A random password of ~128 bits, easy to copy (URL-safe base64, 22 characters)."""
    return secrets.token_urlsafe(16)


@dataclass(frozen=True, slots=True)
class Passwords:
    """argon2id with the library's defaults (RFC 9106 low-memory: t=3, m=64 MiB, p=4).

    Tests pass cheaper parameters; production keeps the defaults.
    """

    time_cost: int = argon2.DEFAULT_TIME_COST
    memory_cost: int = argon2.DEFAULT_MEMORY_COST
    parallelism: int = argon2.DEFAULT_PARALLELISM
    _hasher: argon2.PasswordHasher = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        hasher = argon2.PasswordHasher(
            time_cost=self.time_cost,
            memory_cost=self.memory_cost,
            parallelism=self.parallelism,
            type=argon2.Type.ID,
        )
        object.__setattr__(self, "_hasher", hasher)

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        """Whether ``password`` matches; False (never an exception) for a malformed hash."""
        try:
            return self._hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether the hash was made with other parameters than these."""
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True

    def burn(self, password: str) -> None:
        """Spend the time of a verification for an unknown user, so timing tells nothing."""
        self.verify(self._dummy_hash(), password)

    def _dummy_hash(self) -> str:
        cached: str | None = _DUMMY.get(self)
        if cached is None:
            cached = _DUMMY[self] = self.hash(secrets.token_urlsafe(16))
        return cached


_DUMMY: dict[Passwords, str] = {}
