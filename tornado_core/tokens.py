"""API tokens: generation and the hash the tenant store keeps (never the token itself)."""

from __future__ import annotations

import hashlib
import secrets

#: Every token starts with this, so leaked tokens are easy to spot in logs and scanners.
TOKEN_PREFIX = "tnd_"


def new_token() -> str:
    """A fresh random API token (``tnd_`` + 43 URL-safe characters, 256 bits)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The SHA-256 hex digest of ``token``, as stored by :class:`TenantStorePort`."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
