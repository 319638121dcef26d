"""Session expiry, cookie attributes, safe redirects and token shapes."""

from __future__ import annotations

import pytest

from watchkeeper.web.security import tokens
from watchkeeper.web.security.redirects import login_url, safe_next
from watchkeeper.web.security.sessions import (
    CookiePolicy,
    SessionPolicy,
    SessionTimes,
    expired,
    needs_touch,
    new_session_id,
)

POLICY = SessionPolicy(idle=600, absolute=3600, touch_every=60)


def test_idle_and_absolute_expiry() -> None:
    times = SessionTimes(created=0, last_seen=0, expires=3600)
    assert expired(times, POLICY, 599) is None
    assert expired(times, POLICY, 600) == "idle"
    busy = SessionTimes(created=0, last_seen=3500, expires=3600)
    assert expired(busy, POLICY, 3599) is None
    assert expired(busy, POLICY, 3600) == "expired"


def test_last_seen_is_written_rarely() -> None:
    times = SessionTimes(created=0, last_seen=100, expires=3600)
    assert not needs_touch(times, POLICY, 159)
    assert needs_touch(times, POLICY, 160)


def test_secure_cookie_follows_the_scheme_unless_told() -> None:
    assert CookiePolicy().is_secure("https") and not CookiePolicy().is_secure("http")
    assert CookiePolicy(secure=True).is_secure("http")
    assert not CookiePolicy(secure=False).is_secure("https")
    assert CookiePolicy().name == "wk_session" and CookiePolicy().same_site == "lax"


def test_session_ids_are_long_and_random() -> None:
    first = new_session_id()
    assert len(first) >= 43 and first != new_session_id()


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/services?state=critical", "/services?state=critical"),
        ("/", "/"),
        (None, "/"),
        ("", "/"),
        ("https://evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("/a\\b", "/"),
        ("javascript:alert(1)", "/"),
        ("services", "/"),
        ("/x\r\nSet-Cookie: a=b", "/"),
        ("/" + "a" * 3000, "/"),
    ],
)
def test_safe_next(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected


def test_login_url_quotes_the_target() -> None:
    assert login_url("/hosts?q=a b&x=1") == "/login?next=/hosts%3Fq%3Da%20b%26x%3D1"
    assert login_url("//evil") == "/login?next=/"


def test_tokens() -> None:
    token = tokens.generate_token()
    assert token.startswith("wk_") and tokens.looks_like_user_token(token)
    assert not tokens.looks_like_user_token(token + "x")
    assert not tokens.looks_like_user_token("Bearer-something")
    assert tokens.digest(token) != tokens.digest(tokens.generate_token())
    assert len(tokens.digest(token)) == 64
    assert tokens.display_prefix(token) == token[:9]
    tokens.check_token_name("grafana-1.x")
    with pytest.raises(ValueError, match="not a token name"):
        tokens.check_token_name("-bad")
