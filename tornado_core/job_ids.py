"""Job ids that the API can recognise as its own without asking the database.

A job id is 26 characters of time-ordered randomness (ULID layout) followed by
a 10-character HMAC over the body and the tenant. The API can therefore answer
``queued`` for a job it issued that no worker has touched yet, keep the database
off the enqueue path, and refuse ids of other tenants (their MAC does not match).
A job submitted with an idempotency key gets a body derived from the key, so
re-submitting returns the same id.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time

#: Longest idempotency key a client may give (the API's, the outbox's and the transaction's).
MAX_IDEMPOTENCY_KEY = 200

_BODY_LEN = 26
_MAC_LEN = 10
_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case


_TAG_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"  # RFC 4648 base32, lower case
# Two digits per 10 bits: a tag is 5 table lookups instead of 10 divisions.
_TAG_PAIRS = [a + b for a in _TAG_ALPHABET for b in _TAG_ALPHABET]


#: Each random byte to one digit, by its low 5 bits (256 is a multiple of 32: every digit as likely).
_RANDOM_DIGITS = bytes.maketrans(bytes(range(256)), (_ALPHABET * 8).encode())
#: Random digits in a body: 80 bits, 5 per digit.
_RANDOM_LEN = 16


def _b32(data: bytes, length: int) -> str:
    """The last ``length`` base-32 digits of ``data`` read as a big-endian number (Crockford, lower case)."""
    number = int.from_bytes(data, "big")
    chars = []
    for _ in range(length):
        number, index = divmod(number, 32)
        chars.append(_ALPHABET[index])
    return "".join(reversed(chars))


class JobIds:
    """Issues and recognises job ids.

    Args:
        secret: The deployment's secret key; every API process must share it.
    """

    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(secret.encode()).digest()
        self._keyed = hashlib.blake2b(key=self._key, digest_size=16)  # copied per id: keyed once
        self._stamp = (-1, "")  # (millisecond, its 10 digits), replaced as one: threads share it

    def new(self, tenant: str, *, now: float | None = None) -> str:
        """A fresh, time-ordered id for ``tenant``."""
        body = self._stamp_digits(now) + os.urandom(_RANDOM_LEN).translate(_RANDOM_DIGITS).decode()
        return body + self._mac(body, tenant)

    def new_many(self, tenant: str, count: int) -> list[str]:
        """``count`` fresh ids for ``tenant``, as :meth:`new` gives them (one clock read and one read
        of randomness for all)."""
        stamp, size = self._stamp_digits(None), _RANDOM_LEN
        noise = os.urandom(size * count).translate(_RANDOM_DIGITS).decode()
        bodies = [stamp + noise[at : at + size] for at in range(0, size * count, size)]
        return [body + self._mac(body, tenant) for body in bodies]

    def _stamp_digits(self, now: float | None) -> str:
        """The 10 digits of the millisecond ``now`` (the clock's if ``None``), remembered for the next id."""
        millis = int((time.time() if now is None else now) * 1000)
        stamp = self._stamp
        if stamp[0] != millis:
            stamp = self._stamp = (millis, _b32(millis.to_bytes(6, "big"), 10))
        return stamp[1]

    def for_idempotency_key(self, tenant: str, key: str) -> str:
        """The id that every submission of ``key`` by ``tenant`` gets."""
        digest = hmac.new(self._key, f"idem\0{tenant}\0{key}".encode(), hashlib.sha256).digest()
        body = _b32(digest[:17], _BODY_LEN)
        # Its tag must never change: the same key has to give the same id before and after an upgrade.
        return body + self._sha256_mac(body, tenant)

    def belongs_to(self, job_id: str, tenant: str) -> bool:
        """Whether ``job_id`` was issued by this deployment for ``tenant``."""
        if len(job_id) != _BODY_LEN + _MAC_LEN or not job_id.isascii():
            return False  # compare_digest takes ASCII text only; no id of ours is anything else
        body, mac = job_id[:_BODY_LEN], job_id[_BODY_LEN:]
        # Idempotency-key ids, and every id issued before 2026-11-29, carry an HMAC-SHA256 tag.
        return hmac.compare_digest(mac, self._mac(body, tenant)) or hmac.compare_digest(
            mac, self._sha256_mac(body, tenant)
        )

    def _mac(self, body: str, tenant: str) -> str:
        """The tag of a new id: keyed BLAKE2b (a MAC by design, and several times cheaper)."""
        mac = self._keyed.copy()
        mac.update(f"id\0{body}\0{tenant}".encode())
        # The first 50 bits of the digest, as base32 of the whole digest would begin: five pairs.
        bits, pairs = int.from_bytes(mac.digest()[:7], "big") >> 6, _TAG_PAIRS
        return (
            pairs[bits >> 40] + pairs[(bits >> 30) & 1023] + pairs[(bits >> 20) & 1023]
            + pairs[(bits >> 10) & 1023] + pairs[bits & 1023]
        )  # fmt: skip

    def _sha256_mac(self, body: str, tenant: str) -> str:
        """The tag of idempotency-key ids (and of every id issued before 2026-11-29): HMAC-SHA256."""
        digest = hmac.new(self._key, f"id\0{body}\0{tenant}".encode(), hashlib.sha256).digest()
        return base64.b32encode(digest).decode().lower()[:_MAC_LEN]
