"""Per-tenant request quotas of one API process: token buckets, answered 429 with Retry-After.

A tenant's quota is its ``requests_per_second`` (``tornado tenants quota``), else the deployment's
``tenant_requests_per_second`` (0: no quota). Each of ``N`` pre-forked API processes takes a
``1/N`` share, so the whole API holds the tenant to its quota. A bucket holds one second's worth.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    at: float


class TenantQuotas:
    """Token buckets per tenant.

    Args:
        default_rate: Requests per second of tenants without a quota of their own (0: unlimited).
        share: This process's share of each quota (``1 / processes``).
        clock: Monotonic clock (tests).
    """

    def __init__(
        self, default_rate: float = 0.0, *, share: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._default = default_rate
        self._share = share
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def take(self, tenant: str, rate: float | None) -> float:
        """Count one request of ``tenant``; returns 0, or the seconds until one would be allowed."""
        per_second = (rate if rate is not None else self._default) * self._share
        if per_second <= 0:
            return 0.0
        capacity = max(per_second, 1.0)
        now = self._clock()
        bucket = self._buckets.setdefault(tenant, _Bucket(capacity, now))
        bucket.tokens = min(capacity, bucket.tokens + (now - bucket.at) * per_second)
        bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / per_second
