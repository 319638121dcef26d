"""CSRF tokens: which methods need one, comparison, and reading it from a form."""

from __future__ import annotations

from watchkeeper.web.security import csrf


def test_unsafe_methods() -> None:
    assert [m for m in ("GET", "head", "OPTIONS", "TRACE") if csrf.is_unsafe(m)] == []
    assert all(csrf.is_unsafe(m) for m in ("POST", "put", "PATCH", "DELETE"))


def test_matches_needs_both_and_equal() -> None:
    token = csrf.new_token()
    assert len(token) >= 40 and token != csrf.new_token()
    assert csrf.matches(token, token)
    assert not csrf.matches(token, token[:-1] + "x")
    assert not csrf.matches(token, None) and not csrf.matches(None, token)
    assert not csrf.matches("", "")


def test_form_token() -> None:
    body = b"a=1&csrf_token=abc%2Bdef&b="
    assert csrf.form_token("application/x-www-form-urlencoded; charset=utf-8", body) == "abc+def"
    assert csrf.form_token("application/json", body) is None
    assert csrf.form_token(None, body) is None
    assert csrf.form_token("application/x-www-form-urlencoded", b"a=1") is None
    assert csrf.parse_form(b"\xff=1") == {"\ufffd": ["1"]}
    assert csrf.parse_form(b"&".join(b"f%d=1" % n for n in range(100))) == {}
