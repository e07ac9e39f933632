"""Per-key limits of a task: concurrency caps and rate limits per tenant, or per any payload fields.

In a multi-tenant ERP one tenant's burst must not starve the others, and a service such as a
SEFAZ takes so many requests per second per CNPJ and UF. A task declares its limits::

    @task(name="sped.generate", payload=Period,
          limits=[ConcurrencyLimit(4)])                       # at most 4 at once per tenant
    @task(name="nfe.emit", payload=Invoice,
          limits=[RateLimit(5, per=("cnpj", "uf"))])          # 5 per second per CNPJ and UF

The limits hold across every worker process and container. A job whose key is at its limit is
not run: its message goes back to the end of the queue, due again after
:attr:`ConcurrencyLimit.retry_after` (or when the next request is allowed), so the jobs of other
keys behind it run meanwhile. That is what makes a queue shared by tenants fair.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: The name in ``per`` that stands for the job's tenant (the others are payload fields).
TENANT = "tenant"


@dataclass(frozen=True)
class ConcurrencyLimit:
    """At most :attr:`max` jobs of the task run at once per key.

    Attributes:
        max: Jobs at once per key.
        per: What makes the key: ``"tenant"`` and/or names of top-level payload fields.
        retry_after: Seconds before a job refused at the limit is tried again.
    """

    max: int
    per: tuple[str, ...] = (TENANT,)
    retry_after: float = 1.0

    def __post_init__(self) -> None:
        if self.max < 1:
            raise ValueError("a concurrency limit allows at least one job at once")
        _check_per(self.per)
        if not 0 < self.retry_after <= 900:
            raise ValueError("retry_after is a number of seconds from 0 to 900")


@dataclass(frozen=True)
class RateLimit:
    """At most :attr:`rate` jobs of the task start per :attr:`period` seconds per key.

    A token bucket: it holds :attr:`burst` tokens (by default :attr:`rate`), a job takes one to
    start, and it refills at ``rate / period`` per second.

    Attributes:
        rate: Jobs per period per key.
        period: The period in seconds.
        per: What makes the key: ``"tenant"`` and/or names of top-level payload fields.
        burst: Jobs that may start at once after a quiet time.
    """

    rate: float
    period: float = 1.0
    per: tuple[str, ...] = (TENANT,)
    burst: float | None = None

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.period <= 0:
            raise ValueError("a rate limit is a positive number of jobs per positive seconds")
        if self.burst is not None and self.burst < 1:
            raise ValueError("a rate limit's burst is at least one job")
        _check_per(self.per)

    @property
    def per_second(self) -> float:
        """Tokens added per second."""
        return self.rate / self.period

    @property
    def capacity(self) -> float:
        """Tokens the bucket holds when full."""
        return self.burst if self.burst is not None else max(1.0, self.rate)


KeyLimit = ConcurrencyLimit | RateLimit


def limit_key(limit: KeyLimit, tenant: str, payload: Mapping[str, Any] | None) -> str:
    """The key of one job under ``limit``: its values of :attr:`per`, as canonical JSON."""
    fields = payload or {}
    values = [tenant if name == TENANT else fields.get(name) for name in limit.per]
    return json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def needs_payload(limits: Sequence[KeyLimit]) -> bool:
    """Whether some limit's key takes payload fields (not only the tenant)."""
    return any(name != TENANT for limit in limits for name in limit.per)


def unknown_fields(limits: Sequence[KeyLimit], fields: set[str]) -> list[str]:
    """The names in the limits' ``per`` that are neither ``tenant`` nor one of ``fields``."""
    return sorted({name for limit in limits for name in limit.per} - fields - {TENANT})


def _check_per(per: tuple[str, ...]) -> None:
    if not per or not all(isinstance(name, str) and name for name in per):
        raise ValueError("a limit's key names 'tenant' and/or payload fields, at least one")
