"""Roles are ordered viewer < operator < admin."""

from __future__ import annotations

import pytest

from watchkeeper.web.security.principal import Principal
from watchkeeper.web.security.roles import NAMES, Role, lowest


def test_each_role_allows_itself_and_those_below() -> None:
    assert Role.ADMIN.allows(Role.OPERATOR) and Role.ADMIN.allows(Role.VIEWER)
    assert Role.OPERATOR.allows(Role.VIEWER) and Role.OPERATOR.allows(Role.OPERATOR)
    assert not Role.OPERATOR.allows(Role.ADMIN)
    assert not Role.VIEWER.allows(Role.OPERATOR)
    assert [r.rank for r in (Role.VIEWER, Role.OPERATOR, Role.ADMIN)] == [0, 1, 2]


def test_parse_and_names() -> None:
    assert Role.parse(" Operator ") is Role.OPERATOR
    with pytest.raises(ValueError, match="use one of viewer, operator, admin"):
        Role.parse("root")
    assert NAMES == ("viewer", "operator", "admin")


def test_lowest_caps_a_token_at_its_owner() -> None:
    assert lowest(Role.ADMIN, Role.VIEWER) is Role.VIEWER
    assert lowest(Role.OPERATOR, Role.ADMIN) is Role.OPERATOR


def test_principal() -> None:
    p = Principal("bob", Role.OPERATOR, "session", csrf_token="t")
    assert p.allows(Role.VIEWER) and not p.allows(Role.ADMIN) and p.is_user
    assert not Principal("manager-token", Role.ADMIN, "manager-token").is_user
    assert p.log_context() == {"name": "bob", "role": "operator", "via": "session"}
