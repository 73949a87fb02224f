"""Auth: stateless signed session tokens, so any instance can check any token.

A token is ``user.expiry.signature`` where the signature is an HMAC of the user
and expiry with the shop's secret (``SHOP_SECRET``), shared by every instance.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import time

TOKEN_TTL_S = 3600
CLOCK_SKEW_S = 30
USER_PATTERN = re.compile(r"^[a-z0-9_-]{1,32}$")


class AuthError(ValueError):
    """The credentials are missing, malformed, forged or expired."""


def _secret() -> bytes:
    return os.environ.get("SHOP_SECRET", "shop-demo-secret").encode()


def _signature(user: str, expiry: int) -> str:
    message = f"{user}.{expiry}".encode()
    return hmac.new(_secret(), message, hashlib.sha256).hexdigest()


def issue(user: str, now: float | None = None) -> str:
    """A token for ``user`` valid for TOKEN_TTL_S seconds."""
    if not USER_PATTERN.match(user):
        raise AuthError(f"not a user name: {user!r}")
    expiry = int((time.time() if now is None else now) + TOKEN_TTL_S)
    return f"{user}.{expiry}.{_signature(user, expiry)}"


def check(token: str, now: float | None = None) -> str:
    """The user a valid token belongs to; AuthError otherwise."""
    try:
        user, expiry_text, signature = token.split(".")
        expiry = int(expiry_text)
    except ValueError:
        raise AuthError("malformed token") from None
    if not hmac.compare_digest(signature, _signature(user, expiry)):
        raise AuthError("bad signature")
    if expiry + CLOCK_SKEW_S < (time.time() if now is None else now):
        raise AuthError("token expired")
    return user


def bearer_token(header: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header."""
    scheme, _, token = (header or "").partition(" ")
    if scheme != "Bearer" or not token:
        raise AuthError("expected 'Authorization: Bearer <token>'")
    return token.strip()
