"""Login rate limiting: failures per user name and per client address, with growing lockouts.

Pure and in memory; the caller passes ``now`` (epoch seconds). A key (a user name or an
address) that fails `LimitPolicy.max_failures` times within `LimitPolicy.window` seconds is
locked for `LimitPolicy.lockout` seconds; each further lockout of the same key doubles that,
up to `LimitPolicy.max_lockout`. A key quiet for `LimitPolicy.max_lockout` seconds (no failure,
no lockout) starts afresh. While locked, a login is refused before its password is even checked, so
guessing gets no answers.

The state lives in the manager process: a restart forgets it, which is no worse than one
lockout period for an attacker.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitPolicy:
    """How many failures a key may have, and how long it is locked out after."""

    max_failures: int = 5
    window: float = 60.0
    lockout: float = 60.0
    max_lockout: float = 3600.0

    def lockout_for(self, level: int) -> float:
        """The length of the ``level``-th lockout (0 is the first)."""
        return float(min(self.max_lockout, self.lockout * 2 ** min(level, 32)))


@dataclass(slots=True)
class _Entry:
    failures: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0
    #: Lockouts so far; the next one lasts ``lockout * 2**level``.
    level: int = 0
    last_failure: float = 0.0
    #: Attempts begun and not yet finished: they count against the limit while in flight, so
    #: a burst of parallel guesses cannot all slip in before the first failure is recorded.
    pending: int = 0


class RateLimiter:
    """Failures and lockouts of one kind of key (user names, or client addresses)."""

    def __init__(self, policy: LimitPolicy, *, max_keys: int = 100_000) -> None:
        self.policy = policy
        #: Beyond this many keys the oldest quiet ones are dropped: memory stays bounded
        #: however many names an attacker makes up.
        self.max_keys = max_keys
        self._entries: dict[str, _Entry] = {}

    def retry_after(self, key: str, now: float) -> float:
        """Seconds until ``key`` may try again; 0.0 when it may now."""
        entry = self._current(key, now)
        if entry is None:
            return 0.0
        if entry.locked_until > now:
            return entry.locked_until - now
        self._expire(entry, now)
        if len(entry.failures) + entry.pending < self.policy.max_failures:
            return 0.0
        # Full with attempts in flight: wait for the oldest failure to leave the window.
        return entry.failures[0] + self.policy.window - now if entry.failures else 1.0

    def begin(self, key: str, now: float) -> None:
        """Count an attempt as in flight until `end` (call `retry_after` first)."""
        entry = self._current(key, now)
        if entry is None:
            if len(self._entries) >= self.max_keys:
                self.prune(now)
            entry = self._entries[key] = _Entry(last_failure=now)
        entry.pending += 1

    def end(self, key: str) -> None:
        """An attempt begun with `begin` is over (record its failure with `failure`)."""
        entry = self._entries.get(key)
        if entry is not None and entry.pending > 0:
            entry.pending -= 1

    def failure(self, key: str, now: float) -> float:
        """Count a failed attempt; returns the lockout it caused (0.0 if none)."""
        entry = self._current(key, now)
        if entry is None:
            if len(self._entries) >= self.max_keys:
                self.prune(now)
            entry = self._entries[key] = _Entry()
        entry.last_failure = now
        self._expire(entry, now)
        entry.failures.append(now)
        if len(entry.failures) < self.policy.max_failures:
            return 0.0
        lockout = self.policy.lockout_for(entry.level)
        entry.level += 1
        entry.locked_until = now + lockout
        entry.failures.clear()
        return lockout

    def reset(self, key: str) -> None:
        """Forget ``key``'s failures (a successful login)."""
        self._entries.pop(key, None)

    def prune(self, now: float) -> None:
        """Drop keys that would start afresh anyway, then the quietest if still too many."""
        for key in [k for k, e in self._entries.items() if self._stale(e, now)]:
            del self._entries[key]
        excess = len(self._entries) - self.max_keys + 1
        if excess > 0:
            quietest = sorted(self._entries, key=lambda k: self._entries[k].last_failure)
            for key in quietest[:excess]:
                del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)

    def _current(self, key: str, now: float) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is not None and self._stale(entry, now):
            del self._entries[key]
            return None
        return entry

    def _stale(self, entry: _Entry, now: float) -> bool:
        quiet_since = max(entry.last_failure, entry.locked_until)
        return entry.pending == 0 and now - quiet_since >= self.policy.max_lockout

    def _expire(self, entry: _Entry, now: float) -> None:
        while entry.failures and entry.failures[0] <= now - self.policy.window:
            entry.failures.popleft()


@dataclass(frozen=True, slots=True)
class Refusal:
    """A login refused for now; ``retry_after`` is whole seconds, for the header."""

    retry_after: int

    @classmethod
    def after(cls, seconds: float) -> Refusal:
        return cls(max(1, math.ceil(seconds)))


class LoginThrottle:
    """Both limits of a login: per user name (5/min) and per client address (20/min).

    An address gets more room than a name because an office or a proxy puts many people
    behind one address; a name gets less because guessing one account is the attack.
    """

    def __init__(
        self,
        *,
        per_user: LimitPolicy | None = None,
        per_address: LimitPolicy | None = None,
        max_keys: int = 100_000,
    ) -> None:
        self.users = RateLimiter(per_user or LimitPolicy(), max_keys=max_keys)
        self.addresses = RateLimiter(per_address or LimitPolicy(max_failures=20), max_keys=max_keys)

    def check(self, user: str, address: str, now: float) -> Refusal | None:
        """A refusal if either the name or the address may not try now."""
        wait = max(
            self.users.retry_after(_user_key(user), now),
            self.addresses.retry_after(address, now),
        )
        return Refusal.after(wait) if wait > 0 else None

    def begin(self, user: str, address: str, now: float) -> Refusal | None:
        """Start an attempt: a refusal, or None and the attempt is in flight until `finish`."""
        refusal = self.check(user, address, now)
        if refusal is None:
            self.users.begin(_user_key(user), now)
            self.addresses.begin(address, now)
        return refusal

    def finish(self, user: str, address: str, now: float, *, ok: bool) -> Refusal | None:
        """End an attempt begun with `begin`; a failure that locks a key returns the refusal.

        A correct password clears the name's failures; the address's decay by time.
        """
        self.users.end(_user_key(user))
        self.addresses.end(address)
        if ok:
            self.users.reset(_user_key(user))
            return None
        locked = max(self.users.failure(_user_key(user), now), self.addresses.failure(address, now))
        return Refusal.after(locked) if locked > 0 else None

    def prune(self, now: float) -> None:
        self.users.prune(now)
        self.addresses.prune(now)


def _user_key(user: str) -> str:
    """Names are compared case-insensitively here, so ``Admin`` and ``admin`` share a limit."""
    return user.strip().casefold()[:256]
