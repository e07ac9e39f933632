"""Console session tokens (random, stored only as their SHA-256) and the CSRF token derived from each."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from tornado_core.tokens import hash_token

#: What the CSRF token is derived for, so the same session token could key other values apart.
_CSRF_PURPOSE = b"tornado-console-csrf"


def new_session_token() -> str:
    """A fresh session token: 32 random bytes, URL-safe (the cookie's value)."""
    return secrets.token_urlsafe(32)


def session_key(token: str) -> str:
    """The SHA-256 hex digest of a session token: all the store keeps of it."""
    return hash_token(token)


def csrf_token(token: str) -> str:
    """The CSRF token of a session: HMAC-SHA256 keyed by the session token.

    It needs no storage, and a page on another site, which cannot read the HttpOnly session
    cookie, cannot compute it.
    """
    return hmac.new(token.encode("utf-8"), _CSRF_PURPOSE, hashlib.sha256).hexdigest()


def csrf_ok(token: str, given: str | None) -> bool:
    """Whether ``given`` (a form field or header) is the CSRF token of session ``token``.

    Compared in constant time; a missing value or an empty session token is refused.
    """
    if not token or not given:
        return False
    return hmac.compare_digest(csrf_token(token).encode("ascii"), given.encode("utf-8", "replace"))
