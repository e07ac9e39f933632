"""The webhook store port: tenants' endpoints and the deliveries of their jobs' outcomes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

#: Job statuses that become a webhook event (``job.<status>``).
EVENT_STATUSES = ("succeeded", "dead", "cancelled")


class DeliveryStatus(StrEnum):
    """Where a delivery is: ``pending`` (due or waiting for its next attempt), ``delivered``
    (a 2xx answer), ``dead`` (every attempt failed, or its endpoint was removed)."""

    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


class RedeliverOutcome(StrEnum):
    """What a redelivery request did."""

    SCHEDULED = "scheduled"  # a delivered or dead delivery is due again, under the same id
    PENDING = "pending"  # it is still pending: nothing changed
    ENDPOINT_REMOVED = "endpoint_removed"  # its endpoint is gone: nothing changed
    UNKNOWN = "unknown"  # no such delivery of that tenant


@dataclass(frozen=True, kw_only=True)
class WebhookEndpoint:
    """A registered endpoint (its secret is never read back: only its first characters).

    Attributes:
        endpoint_id: Its id (``whe_...``).
        tenant: The tenant whose jobs it hears of.
        url: Where deliveries are POSTed.
        description: Free text.
        secret_prefix: The first characters of its signing secret, to tell secrets apart.
        created_at: When it was registered.
    """

    endpoint_id: str
    tenant: str
    url: str
    description: str
    secret_prefix: str
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        """The endpoint as the API shows it."""
        return {
            "id": self.endpoint_id,
            "tenant": self.tenant,
            "url": self.url,
            "description": self.description,
            "secret_prefix": self.secret_prefix,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True, kw_only=True)
class Delivery:
    """One event on its way to one endpoint.

    Attributes:
        delivery_id: Its id (``whd_...``): the receivers' idempotency key, the same on every attempt.
        endpoint_id: The endpoint it goes to.
        tenant: The endpoint's tenant.
        url: The endpoint's URL.
        job_id: The job whose outcome it tells.
        event: ``job.succeeded``, ``job.dead`` or ``job.cancelled``.
        status: Pending, delivered or dead.
        attempts: Attempts made since it was (re)scheduled.
        next_attempt_at: When a pending delivery is due.
        last_status_code: HTTP status of the last attempt (``None``: no answer, or no attempt yet).
        last_error: Why the last attempt failed (``None`` after a success).
        last_duration_ms: How long the last attempt took.
        created_at: When the job's outcome created it.
        delivered_at: When a receiver last accepted it.
    """

    delivery_id: str
    endpoint_id: str
    tenant: str
    url: str
    job_id: str
    event: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    last_duration_ms: int | None
    created_at: datetime
    delivered_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        """The delivery as the API shows it."""
        return {
            "id": self.delivery_id,
            "endpoint_id": self.endpoint_id,
            "url": self.url,
            "job_id": self.job_id,
            "event": self.event,
            "status": str(self.status),
            "attempts": self.attempts,
            "next_attempt_at": _iso(self.next_attempt_at),
            "last_status_code": self.last_status_code,
            "last_error": self.last_error,
            "last_duration_ms": self.last_duration_ms,
            "created_at": self.created_at.isoformat(),
            "delivered_at": _iso(self.delivered_at),
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True, kw_only=True)
class ClaimedDelivery:
    """A due delivery a dispatcher took, for one attempt.

    Attributes:
        delivery_id: Its id (the ``Tornado-Delivery`` header).
        claim: The claim's token: only its holder may record the attempt's outcome.
        url: Where to POST.
        secret: The endpoint's signing secret.
        event: The event name.
        job: The job as it was when it reached its outcome (``id``, ``task``, ``status``...).
        created_at: When the event happened.
        attempt: This attempt's number (1 for the first since it was scheduled).
    """

    delivery_id: str
    claim: str
    url: str
    secret: str
    event: str
    job: dict[str, Any]
    created_at: datetime
    attempt: int


@dataclass(frozen=True, kw_only=True)
class AttemptResult:
    """What one POST got.

    Attributes:
        status_code: The HTTP status, or ``None`` without an answer (refused, timed out).
        error: Why it failed (``None`` for a 2xx).
        duration_ms: How long it took.
    """

    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def delivered(self) -> bool:
        """Whether the receiver accepted it (2xx)."""
        return self.status_code is not None and 200 <= self.status_code < 300


class WebhookStorePort(Protocol):
    """Endpoints and deliveries. Every method raises ``StoreUnavailable`` when the store is down.

    Deliveries are created by the store itself when a job of a tenant with endpoints reaches
    ``succeeded``, ``dead`` or ``cancelled`` (in PostgreSQL, by a trigger in the same transaction).
    """

    def add_endpoint(self, *, tenant: str, url: str, description: str, secret: str) -> WebhookEndpoint:
        """Register an endpoint.

        Raises:
            ConfigError: No such tenant.
        """
        ...

    def list_endpoints(self, *, tenant: str | None) -> list[WebhookEndpoint]:
        """Active endpoints, oldest first (``tenant`` ``None``: every tenant's)."""
        ...

    def remove_endpoint(self, endpoint_id: str, *, tenant: str | None) -> bool:
        """Remove an endpoint (its pending deliveries end dead); whether it existed."""
        ...

    def list_deliveries(
        self, *, tenant: str | None, status: DeliveryStatus | None, limit: int
    ) -> list[Delivery]:
        """Deliveries, newest first, optionally of one tenant and one status."""
        ...

    def redeliver(self, delivery_id: str, *, tenant: str | None) -> RedeliverOutcome:
        """Schedule a delivered or dead delivery again, due now, with its attempts reset."""
        ...

    def claim_due(self, *, limit: int, lease_seconds: float) -> list[ClaimedDelivery]:
        """Take up to ``limit`` due deliveries for one attempt each.

        A claimed delivery is not due again for ``lease_seconds`` (a dispatcher that dies
        mid-attempt leaves it to another one then); several dispatchers never take the same one.
        """
        ...

    def record_attempt(
        self, claimed: ClaimedDelivery, result: AttemptResult, *, retry_in: float | None
    ) -> None:
        """Record an attempt: delivered on a 2xx; else due again in ``retry_in`` seconds, or dead
        when ``retry_in`` is ``None``. Ignored when the claim was lost (its lease ran out and
        another dispatcher took the delivery)."""
        ...

    def wait_for_work(self, timeout: float) -> None:
        """Block until a delivery may have become due, or ``timeout`` seconds pass."""
        ...

    def close(self) -> None:
        """Release connections and threads."""
        ...
