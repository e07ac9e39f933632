"""The webhook store in PostgreSQL: endpoints, deliveries (created by the migration's trigger), claims."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from tornado_core.adapters.postgres._listener import QueueListener
from tornado_core.adapters.postgres.pool import PostgresPool
from tornado_core.errors import ConfigError
from tornado_core.ports.webhooks import (
    AttemptResult,
    ClaimedDelivery,
    Delivery,
    DeliveryStatus,
    RedeliverOutcome,
    WebhookEndpoint,
)
from tornado_core.webhooks.registration import SHOWN_SECRET_CHARS

#: The channel the trigger (and redeliveries) notify when deliveries are due.
CHANNEL = "tornado_webhooks"
_WAKE_KEY = "due"


_ADD = """
INSERT INTO tornado_webhook_endpoints (endpoint_id, tenant, url, description, secret)
SELECT %(id)s, %(tenant)s, %(url)s, %(description)s, %(secret)s
WHERE EXISTS (SELECT 1 FROM tornado_tenants WHERE name = %(tenant)s)
RETURNING endpoint_id, tenant, url, description, left(secret, %(shown)s), created_at
"""

_ENDPOINT_COLUMNS = "endpoint_id, tenant, url, description, left(secret, %(shown)s), created_at"

_REMOVE = """
WITH removed AS (
    UPDATE tornado_webhook_endpoints SET removed_at = clock_timestamp()
    WHERE endpoint_id = %(id)s AND removed_at IS NULL AND (%(tenant)s::text IS NULL OR tenant = %(tenant)s)
    RETURNING endpoint_id
),
ended AS (
    UPDATE tornado_webhook_deliveries AS d SET status = 'dead', claim = NULL,
        last_error = 'endpoint removed', updated_at = clock_timestamp()
    FROM removed WHERE d.endpoint_id = removed.endpoint_id AND d.status = 'pending'
    RETURNING d.delivery_id
)
SELECT count(*) FROM removed
"""

_DELIVERY_COLUMNS = """
d.delivery_id, d.endpoint_id, d.tenant, e.url, d.job_id, d.event, d.status, d.attempts,
CASE WHEN d.status = 'pending' THEN d.next_attempt_at END, d.last_status_code, d.last_error,
d.last_duration_ms, d.created_at, d.delivered_at
"""

# Due pending deliveries, each taken by one dispatcher: its lease is a next attempt pushed past
# the attempt's longest duration, so a dispatcher that dies leaves it due again later.
_CLAIM = """
WITH due AS (
    SELECT delivery_id FROM tornado_webhook_deliveries
    WHERE status = 'pending' AND next_attempt_at <= clock_timestamp()
    ORDER BY next_attempt_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE tornado_webhook_deliveries AS d SET
    attempts = d.attempts + 1, claim = gen_random_uuid(),
    next_attempt_at = clock_timestamp() + %(lease)s * interval '1 second', updated_at = clock_timestamp()
FROM due, tornado_webhook_endpoints AS e
WHERE d.delivery_id = due.delivery_id AND e.endpoint_id = d.endpoint_id
RETURNING d.delivery_id, d.claim::text, e.url, e.secret, d.event, d.job, d.created_at, d.attempts
"""

_RECORD = """
UPDATE tornado_webhook_deliveries SET
    status = %(status)s,
    next_attempt_at = clock_timestamp() + COALESCE(%(retry_in)s, 0) * interval '1 second',
    delivered_at = CASE WHEN %(delivered)s THEN clock_timestamp() ELSE delivered_at END,
    claim = NULL, last_status_code = %(code)s, last_error = %(error)s, last_duration_ms = %(duration)s,
    updated_at = clock_timestamp()
WHERE delivery_id = %(id)s AND claim = %(claim)s::uuid AND status = 'pending'
"""

_REDELIVER = """
WITH target AS (
    SELECT d.delivery_id, d.status, e.removed_at IS NOT NULL AS removed
    FROM tornado_webhook_deliveries AS d JOIN tornado_webhook_endpoints AS e USING (endpoint_id)
    WHERE d.delivery_id = %(id)s AND (%(tenant)s::text IS NULL OR d.tenant = %(tenant)s)
    FOR UPDATE OF d
),
scheduled AS (
    UPDATE tornado_webhook_deliveries AS d SET status = 'pending', attempts = 0, claim = NULL,
        next_attempt_at = clock_timestamp(), updated_at = clock_timestamp()
    FROM target AS t
    WHERE d.delivery_id = t.delivery_id AND t.status IN ('delivered', 'dead') AND NOT t.removed
    RETURNING d.delivery_id
)
SELECT t.status, t.removed, EXISTS (SELECT 1 FROM scheduled) FROM target AS t
"""


def _utc(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value is not None else None


def _endpoint(row: Sequence[Any]) -> WebhookEndpoint:
    return WebhookEndpoint(
        endpoint_id=row[0], tenant=row[1], url=row[2], description=row[3], secret_prefix=row[4],
        created_at=row[5].astimezone(UTC),
    )  # fmt: skip


def _delivery(row: Sequence[Any]) -> Delivery:
    return Delivery(
        delivery_id=row[0], endpoint_id=row[1], tenant=row[2], url=row[3], job_id=row[4], event=row[5],
        status=DeliveryStatus(row[6]), attempts=row[7], next_attempt_at=_utc(row[8]),
        last_status_code=row[9], last_error=row[10], last_duration_ms=row[11],
        created_at=row[12].astimezone(UTC), delivered_at=_utc(row[13]),
    )  # fmt: skip


def _claimed(row: Sequence[Any]) -> ClaimedDelivery:
    return ClaimedDelivery(
        delivery_id=row[0], claim=row[1], url=row[2], secret=row[3], event=row[4], job=dict(row[5]),
        created_at=row[6].astimezone(UTC), attempt=row[7],
    )  # fmt: skip


class PostgresWebhookStore:
    """Endpoints and deliveries in ``tornado_webhook_*`` (migration ``0007_webhooks``).

    Args:
        pool: Pool of the job-store database (the trigger lives on ``tornado_jobs``).
        owns_pool: Close the pool in :meth:`close`.

    Every method raises ``StoreUnavailable`` when PostgreSQL cannot be reached.
    """

    def __init__(self, pool: PostgresPool, *, owns_pool: bool = False) -> None:
        self._pool = pool
        self._owns_pool = owns_pool
        self._listener = QueueListener(lambda: pool.new_connection(autocommit=True), channel=CHANNEL)
        self._seen: tuple[int, int] | None = None

    def add_endpoint(self, *, tenant: str, url: str, description: str, secret: str) -> WebhookEndpoint:
        """Register an endpoint of an existing tenant (``ConfigError`` otherwise)."""
        params = {
            "id": "whe_" + secrets.token_hex(12), "tenant": tenant, "url": url,
            "description": description, "secret": secret, "shown": SHOWN_SECRET_CHARS,
        }  # fmt: skip
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(_ADD, params)
            row = cur.fetchone()
        if row is None:
            raise ConfigError(f"no tenant {tenant!r} (create it with `tornado tenants create`)")
        return _endpoint(row)

    def list_endpoints(self, *, tenant: str | None) -> list[WebhookEndpoint]:
        """Active endpoints, oldest first."""
        where = "removed_at IS NULL" + (" AND tenant = %(tenant)s" if tenant is not None else "")
        sql = f"SELECT {_ENDPOINT_COLUMNS} FROM tornado_webhook_endpoints WHERE {where} ORDER BY created_at"
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(sql, {"tenant": tenant, "shown": SHOWN_SECRET_CHARS})
            return [_endpoint(row) for row in cur.fetchall()]

    def remove_endpoint(self, endpoint_id: str, *, tenant: str | None) -> bool:
        """Remove an endpoint; its pending deliveries end dead."""
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(_REMOVE, {"id": endpoint_id, "tenant": tenant})
            row = cur.fetchone()
        return bool(row and row[0])

    def list_deliveries(
        self, *, tenant: str | None, status: DeliveryStatus | None, limit: int
    ) -> list[Delivery]:
        """Deliveries, newest first."""
        where = ["TRUE"]
        if tenant is not None:
            where.append("d.tenant = %(tenant)s")
        if status is not None:
            where.append("d.status = %(status)s")
        sql = (
            f"SELECT {_DELIVERY_COLUMNS} FROM tornado_webhook_deliveries AS d"
            " JOIN tornado_webhook_endpoints AS e USING (endpoint_id)"
            f" WHERE {' AND '.join(where)} ORDER BY d.created_at DESC, d.delivery_id LIMIT %(limit)s"
        )
        params = {"tenant": tenant, "status": str(status) if status else None, "limit": limit}
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return [_delivery(row) for row in cur.fetchall()]

    def redeliver(self, delivery_id: str, *, tenant: str | None) -> RedeliverOutcome:
        """Schedule a delivered or dead delivery again, due now."""
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(_REDELIVER, {"id": delivery_id, "tenant": tenant})
            row = cur.fetchone()
            if row is not None and row[2]:
                cur.execute("SELECT pg_notify(%s, %s)", (CHANNEL, _WAKE_KEY))
        if row is None:
            return RedeliverOutcome.UNKNOWN
        if row[2]:
            return RedeliverOutcome.SCHEDULED
        return RedeliverOutcome.ENDPOINT_REMOVED if row[1] else RedeliverOutcome.PENDING

    def claim_due(self, *, limit: int, lease_seconds: float) -> list[ClaimedDelivery]:
        """Take up to ``limit`` due deliveries (``FOR UPDATE SKIP LOCKED``: dispatchers never collide)."""
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(_CLAIM, {"limit": limit, "lease": float(lease_seconds)})
            rows = cur.fetchall()
        return sorted((_claimed(row) for row in rows), key=lambda c: c.created_at)

    def record_attempt(
        self, claimed: ClaimedDelivery, result: AttemptResult, *, retry_in: float | None
    ) -> None:
        """Delivered, due again in ``retry_in`` seconds, or dead; ignored if the claim was lost."""
        if result.delivered:
            status = DeliveryStatus.DELIVERED
        else:
            status = DeliveryStatus.PENDING if retry_in is not None else DeliveryStatus.DEAD
        params = {
            "id": claimed.delivery_id, "claim": claimed.claim, "status": str(status),
            "retry_in": retry_in, "delivered": result.delivered, "code": result.status_code,
            "error": result.error, "duration": result.duration_ms,
        }  # fmt: skip
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(_RECORD, params)

    @property
    def listening(self) -> bool:
        """Whether notifications reach this store now (else :meth:`wait_for_work` just sleeps)."""
        return self._listener.healthy

    def wait_for_work(self, timeout: float) -> None:
        """Sleep until the trigger or a redelivery notifies, or ``timeout`` passes."""
        if self._seen is None:  # the first call starts listening
            self._seen = self._listener.generation(_WAKE_KEY)
        self._listener.wait(_WAKE_KEY, self._seen, timeout)
        self._seen = self._listener.generation(_WAKE_KEY)  # what arrives from now on wakes the next call

    def close(self) -> None:
        """Stop listening (and close the pool if this store owns it)."""
        self._listener.close()
        if self._owns_pool:
            self._pool.close()
