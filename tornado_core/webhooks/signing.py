"""Signing deliveries and verifying them: HMAC-SHA256 over ``"<timestamp>.<body>"``, replay-bounded.

The header is ``Tornado-Signature: t=<unix seconds>,v1=<hex digest>``. A receiver recomputes the
digest with its endpoint's secret and refuses a signature older than its tolerance, so a captured
request cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from tornado_core.webhooks.errors import SignatureError

#: Seconds a signature stays acceptable by default (either way, for clock skew).
DEFAULT_TOLERANCE = 300
SIGNATURE_HEADER = "Tornado-Signature"
DELIVERY_HEADER = "Tornado-Delivery"
EVENT_HEADER = "Tornado-Event"


def signature_digest(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``"<timestamp>.<body>"`` under ``secret``."""
    message = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, *, timestamp: int | None = None) -> str:
    """The ``Tornado-Signature`` header value for ``body``.

    Args:
        secret: The endpoint's secret (``whsec_...``).
        body: The exact bytes sent.
        timestamp: Unix seconds to sign at (now by default).
    """
    moment = int(time.time()) if timestamp is None else timestamp
    return f"t={moment},v1={signature_digest(secret, moment, body)}"


def verify_signature(
    secret: str, header: str, body: bytes, *, tolerance: float = DEFAULT_TOLERANCE, now: float | None = None
) -> int:
    """Check a ``Tornado-Signature`` header against the raw body, as a receiver should.

    Args:
        secret: The endpoint's secret, as returned when it was registered.
        header: The ``Tornado-Signature`` header value (``t=...,v1=...``).
        body: The raw request body, byte for byte (not re-serialised JSON).
        tolerance: Most seconds between the signature's time and ``now``.
        now: Unix seconds (the current time by default).

    Returns:
        The signature's timestamp.

    Raises:
        SignatureError: Malformed header, no matching ``v1`` digest, or a timestamp outside the
            tolerance (a replay or a skewed clock).
    """
    timestamp, digests = _parse(header)
    expected = signature_digest(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, digest) for digest in digests):
        raise SignatureError("signature mismatch: wrong secret, or the body was altered")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise SignatureError(
            f"signature timestamp {timestamp} is {abs(current - timestamp):.0f}s away from now "
            f"(tolerance {tolerance:g}s): a replay, or a skewed clock"
        )
    return timestamp


def _parse(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    digests: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            digests.append(value)
    if timestamp is None or not digests:
        raise SignatureError(f"malformed {SIGNATURE_HEADER} header (expected 't=<unix seconds>,v1=<hex>')")
    return timestamp, digests
