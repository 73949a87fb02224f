"""Session tokens: issued, checked, forged and expired."""

import pytest

from shop import auth


def test_an_issued_token_checks_as_its_user():
    assert auth.check(auth.issue("ann")) == "ann"


def test_a_forged_token_is_rejected():
    user, expiry, signature = auth.issue("ann").split(".")
    with pytest.raises(auth.AuthError):
        auth.check(f"bob.{expiry}.{signature}")


def test_an_expired_token_is_rejected_after_the_clock_skew():
    token = auth.issue("ann", now=1000.0)
    expiry = 1000 + auth.TOKEN_TTL_S
    assert auth.check(token, now=expiry + auth.CLOCK_SKEW_S - 1) == "ann"
    with pytest.raises(auth.AuthError):
        auth.check(token, now=expiry + auth.CLOCK_SKEW_S + 1)


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer "])
def test_a_missing_or_foreign_authorization_header_is_rejected(header):
    with pytest.raises(auth.AuthError):
        auth.bearer_token(header)


def test_malformed_user_names_get_no_token():
    with pytest.raises(auth.AuthError):
        auth.issue("Robert'); DROP TABLE")
