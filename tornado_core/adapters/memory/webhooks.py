"""Webhook endpoints and deliveries in memory, with the PostgreSQL store's rules (unit tests only).

Nothing creates deliveries by itself here: tests call :meth:`MemoryWebhookStore.job_finished`
where PostgreSQL's trigger would fire.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from tornado_core.ports.webhooks import (
    EVENT_STATUSES,
    AttemptResult,
    ClaimedDelivery,
    Delivery,
    DeliveryStatus,
    RedeliverOutcome,
    WebhookEndpoint,
)


@dataclass
class _Endpoint:
    view: WebhookEndpoint
    secret: str
    removed: bool = False


@dataclass
class _Delivery:
    view: Delivery
    job: dict[str, Any]
    due: float
    claim: str | None = None


class MemoryWebhookStore:
    """Endpoints and deliveries in dicts, guarded by one lock.

    Args:
        clock: Unix seconds (tests move time forward with a clock of their own).
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._endpoints: dict[str, _Endpoint] = {}
        self._deliveries: dict[str, _Delivery] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Condition()

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def add_endpoint(self, *, tenant: str, url: str, description: str, secret: str) -> WebhookEndpoint:
        """Register an endpoint (any tenant)."""
        view = WebhookEndpoint(
            endpoint_id=f"whe_{next(self._ids):024x}", tenant=tenant, url=url, description=description,
            secret_prefix=secret[:10], created_at=self._now(),
        )  # fmt: skip
        with self._lock:
            self._endpoints[view.endpoint_id] = _Endpoint(view, secret)
        return view

    def list_endpoints(self, *, tenant: str | None) -> list[WebhookEndpoint]:
        """Active endpoints, oldest first."""
        with self._lock:
            return [
                e.view for e in self._endpoints.values() if not e.removed and tenant in (None, e.view.tenant)
            ]

    def remove_endpoint(self, endpoint_id: str, *, tenant: str | None) -> bool:
        """Remove an endpoint; its pending deliveries end dead."""
        with self._lock:
            endpoint = self._endpoints.get(endpoint_id)
            if endpoint is None or endpoint.removed or tenant not in (None, endpoint.view.tenant):
                return False
            endpoint.removed = True
            for delivery in self._deliveries.values():
                if (
                    delivery.view.endpoint_id == endpoint_id
                    and delivery.view.status is DeliveryStatus.PENDING
                ):
                    delivery.view = replace(
                        delivery.view, status=DeliveryStatus.DEAD, last_error="endpoint removed"
                    )
                    delivery.claim = None
            return True

    def job_finished(self, job: dict[str, Any]) -> list[str]:
        """What the trigger does when a job (``{"id", "tenant", "status", ...}``) finishes: one
        delivery per active endpoint of its tenant; returns their ids."""
        if job["status"] not in EVENT_STATUSES:
            return []
        created: list[str] = []
        with self._lock:
            for endpoint in self._endpoints.values():
                if endpoint.removed or endpoint.view.tenant != job["tenant"]:
                    continue
                delivery_id = "whd_" + uuid.uuid4().hex
                view = Delivery(
                    delivery_id=delivery_id, endpoint_id=endpoint.view.endpoint_id, tenant=job["tenant"],
                    url=endpoint.view.url, job_id=job["id"], event=f"job.{job['status']}",
                    status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=self._now(),
                    last_status_code=None, last_error=None, last_duration_ms=None, created_at=self._now(),
                    delivered_at=None,
                )  # fmt: skip
                self._deliveries[delivery_id] = _Delivery(view, dict(job), self._clock())
                created.append(delivery_id)
            self._lock.notify_all()
        return created

    def list_deliveries(
        self, *, tenant: str | None, status: DeliveryStatus | None, limit: int
    ) -> list[Delivery]:
        """Deliveries, newest first."""
        with self._lock:
            found = [
                d.view
                for d in reversed(self._deliveries.values())
                if tenant in (None, d.view.tenant) and status in (None, d.view.status)
            ]
        return [self._shown(view) for view in found[:limit]]

    def _shown(self, view: Delivery) -> Delivery:
        if view.status is DeliveryStatus.PENDING:
            return view
        return replace(view, next_attempt_at=None)

    def redeliver(self, delivery_id: str, *, tenant: str | None) -> RedeliverOutcome:
        """Schedule a delivered or dead delivery again, due now."""
        with self._lock:
            delivery = self._deliveries.get(delivery_id)
            if delivery is None or tenant not in (None, delivery.view.tenant):
                return RedeliverOutcome.UNKNOWN
            if self._endpoints[delivery.view.endpoint_id].removed:
                return RedeliverOutcome.ENDPOINT_REMOVED
            if delivery.view.status is DeliveryStatus.PENDING:
                return RedeliverOutcome.PENDING
            delivery.view = replace(
                delivery.view, status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=self._now()
            )
            delivery.due, delivery.claim = self._clock(), None
            self._lock.notify_all()
        return RedeliverOutcome.SCHEDULED

    def claim_due(self, *, limit: int, lease_seconds: float) -> list[ClaimedDelivery]:
        """Take up to ``limit`` due deliveries, earliest first."""
        now = self._clock()
        with self._lock:
            due = sorted(
                (
                    d
                    for d in self._deliveries.values()
                    if d.view.status is DeliveryStatus.PENDING and d.due <= now
                ),
                key=lambda d: d.due,
            )[:limit]
            return [self._claim(delivery, now + lease_seconds) for delivery in due]

    def _claim(self, delivery: _Delivery, until: float) -> ClaimedDelivery:
        delivery.claim = uuid.uuid4().hex
        delivery.due = until
        delivery.view = replace(
            delivery.view,
            attempts=delivery.view.attempts + 1,
            next_attempt_at=datetime.fromtimestamp(until, UTC),
        )
        endpoint = self._endpoints[delivery.view.endpoint_id]
        return ClaimedDelivery(
            delivery_id=delivery.view.delivery_id, claim=delivery.claim, url=endpoint.view.url,
            secret=endpoint.secret, event=delivery.view.event, job=dict(delivery.job),
            created_at=delivery.view.created_at, attempt=delivery.view.attempts,
        )  # fmt: skip

    def record_attempt(
        self, claimed: ClaimedDelivery, result: AttemptResult, *, retry_in: float | None
    ) -> None:
        """Delivered, due again in ``retry_in`` seconds, or dead; ignored if the claim was lost."""
        with self._lock:
            delivery = self._deliveries.get(claimed.delivery_id)
            if (
                delivery is None
                or delivery.claim != claimed.claim
                or delivery.view.status is not DeliveryStatus.PENDING
            ):
                return
            now = self._clock()
            if result.delivered:
                status, due = DeliveryStatus.DELIVERED, now
            else:
                status = DeliveryStatus.PENDING if retry_in is not None else DeliveryStatus.DEAD
                due = now + (retry_in or 0.0)
            delivery.claim, delivery.due = None, due
            delivery.view = replace(
                delivery.view, status=status, next_attempt_at=datetime.fromtimestamp(due, UTC),
                last_status_code=result.status_code, last_error=result.error,
                last_duration_ms=result.duration_ms,
                delivered_at=self._now() if result.delivered else delivery.view.delivered_at,
            )  # fmt: skip

    def wait_for_work(self, timeout: float) -> None:
        """Sleep until a delivery is created or redelivered, or ``timeout`` passes."""
        with self._lock:
            self._lock.wait(timeout)

    def close(self) -> None:
        """Nothing to release."""
