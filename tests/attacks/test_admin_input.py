"""Operator input at the edges of what it can mean is a 400, never a 500 (found by the fuzz)."""

from __future__ import annotations

import pytest

from tests.support.gateway import Gateway


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_a_key_expiry_with_no_utc_equivalent_is_a_400(gateway: Gateway, when: str) -> None:
    made = gateway.admin(
        "POST", f"/admin/accounts/{gateway.account}/keys", json={"expires_at": when}
    )
    assert made.status_code == 400, made.text
    assert gateway.admin("GET", f"/admin/accounts/{gateway.account}/keys").status_code == 200


def test_initial_credit_over_the_cap_creates_nothing(gateway: Gateway) -> None:
    made = gateway.admin("POST", "/admin/accounts", json={"name": "rich", "credit": "1e12"})
    assert made.status_code == 400
    assert gateway.admin("GET", "/admin/accounts/rich").status_code == 404
