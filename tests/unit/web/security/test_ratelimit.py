"""Login rate limiting, on an injected clock."""

from __future__ import annotations

from watchkeeper.web.security.ratelimit import (
    LimitPolicy,
    LoginThrottle,
    RateLimiter,
    Refusal,
)

POLICY = LimitPolicy(max_failures=5, window=60, lockout=60, max_lockout=3600)


def test_five_failures_in_a_minute_lock_for_a_minute() -> None:
    limiter = RateLimiter(POLICY)
    for second in range(4):
        assert limiter.failure("bob", 1000 + second) == 0.0
        assert limiter.retry_after("bob", 1000 + second) == 0.0
    assert limiter.failure("bob", 1004) == 60.0
    assert limiter.retry_after("bob", 1004) == 60.0
    assert limiter.retry_after("bob", 1034) == 30.0
    assert limiter.retry_after("bob", 1064) == 0.0
    assert limiter.retry_after("alice", 1004) == 0.0  # keys are separate


def test_failures_spread_beyond_the_window_never_lock() -> None:
    limiter = RateLimiter(POLICY)
    for n in range(20):
        assert limiter.failure("bob", 1000 + n * 15) == 0.0  # 4 per minute at most


def test_each_lockout_doubles_up_to_the_cap() -> None:
    limiter = RateLimiter(POLICY)
    now = 0.0
    seen = []
    for _ in range(8):
        for _ in range(5):
            locked = limiter.failure("bob", now)
        seen.append(locked)
        now += locked  # try again the moment the lockout ends
    assert seen == [60, 120, 240, 480, 960, 1920, 3600, 3600]


def test_a_quiet_key_starts_afresh() -> None:
    limiter = RateLimiter(POLICY)
    for _ in range(5):
        limiter.failure("bob", 0)
    for _ in range(5):
        limiter.failure("bob", 60)
    assert limiter.retry_after("bob", 60) == 120
    assert len(limiter) == 1
    # remembered for an hour after the lockout ended (at 180), then forgotten
    assert limiter.retry_after("bob", 180 + 3599) == 0.0
    assert len(limiter) == 1
    assert limiter.retry_after("bob", 180 + 3600) == 0.0
    assert len(limiter) == 0
    for _ in range(5):
        last = limiter.failure("bob", 4000)
    assert last == 60


def test_attempts_in_flight_count_against_the_limit() -> None:
    limiter = RateLimiter(POLICY)
    for _ in range(3):
        limiter.failure("bob", 0)
    limiter.begin("bob", 1)
    assert limiter.retry_after("bob", 1) == 0.0
    limiter.begin("bob", 1)  # 3 failures + 2 in flight: full until the first leaves the window
    assert limiter.retry_after("bob", 2) == 58.0
    limiter.end("bob")
    assert limiter.retry_after("bob", 2) == 0.0


def test_memory_stays_bounded() -> None:
    limiter = RateLimiter(POLICY, max_keys=100)
    for n in range(1000):
        limiter.failure(f"made-up-{n}", float(n))
    assert len(limiter) <= 100
    assert limiter.retry_after("made-up-999", 999) == 0.0  # its one failure is still counted
    assert len(limiter) <= 100


def test_login_throttle_limits_names_and_addresses() -> None:
    throttle = LoginThrottle(
        per_user=POLICY, per_address=LimitPolicy(max_failures=8, window=60, lockout=30)
    )
    for n in range(4):
        assert throttle.begin("Bob", "10.0.0.1", n) is None
        assert throttle.finish("bob", "10.0.0.1", n, ok=False) is None
    assert throttle.begin("BOB", "10.0.0.9", 5) is None  # names are case-insensitive
    assert throttle.finish("BOB", "10.0.0.9", 5, ok=False) == Refusal(60)
    assert throttle.check("bob", "10.0.0.2", 6) == Refusal(59)
    # the same address trying other names is limited by the address
    for n, name in enumerate(["a", "b", "c"]):
        assert throttle.begin(name, "10.0.0.1", 10 + n) is None
        throttle.finish(name, "10.0.0.1", 10 + n, ok=False)
    assert throttle.begin("d", "10.0.0.1", 14) is None
    assert throttle.finish("d", "10.0.0.1", 14, ok=False) == Refusal(30)
    assert throttle.begin("e", "10.0.0.1", 15) == Refusal(29)


def test_success_clears_the_names_failures() -> None:
    throttle = LoginThrottle(per_user=POLICY)
    for n in range(4):
        throttle.begin("bob", "a", n)
        throttle.finish("bob", "a", n, ok=False)
    throttle.begin("bob", "a", 5)
    throttle.finish("bob", "a", 5, ok=True)
    for n in range(4):
        throttle.begin("bob", "a", 6 + n)
        assert throttle.finish("bob", "a", 6 + n, ok=False) is None


def test_refusals_round_up_to_whole_seconds() -> None:
    assert Refusal.after(0.2) == Refusal(1)
    assert Refusal.after(59.01) == Refusal(60)
