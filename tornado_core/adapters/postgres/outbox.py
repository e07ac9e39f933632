"""The transactional outbox in the caller's PostgreSQL database (table ``tornado_outbox``).

An application adds rows with its own connection, in its own transaction; the relay
(:mod:`tornado_core.transactional.relay`) claims committed rows with ``FOR UPDATE SKIP LOCKED``,
queues their jobs, then deletes them (or marks them failed) in the same transaction that held
them. A relay that dies mid-batch leaves its rows untouched for the next one.
"""

from __future__ import annotations

import contextlib
import select
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson
import psycopg2
import psycopg2.errors
from psycopg2.extensions import connection as Connection
from psycopg2.extensions import cursor as Cursor

from tornado_core.adapters.postgres.in_transaction import savepoint
from tornado_core.adapters.postgres.pool import PostgresPool, close_quietly, without_flush_wait
from tornado_core.errors import ConfigError, StoreUnavailable
from tornado_core.ports.transactional import FailedRow, OutboxEntry, OutboxRow, OutboxStatus

#: The channel a commit of new rows notifies, and the relay listens on.
CHANNEL = "tornado_outbox"
#: Key of the advisory lock serialising installs (arbitrary, fixed forever).
INSTALL_LOCK = 7_461_727_101

DDL = """
CREATE TABLE IF NOT EXISTS tornado_outbox (
    id              bigserial PRIMARY KEY,
    tenant          text NOT NULL,
    task            text NOT NULL,
    payload         jsonb NOT NULL,
    idempotency_key text NOT NULL,
    delay           double precision NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    failed_at       timestamptz,            -- the relay refused it (error says why)
    error           text
);
-- The relay's claim: pending rows, oldest first.
CREATE INDEX IF NOT EXISTS tornado_outbox_pending_idx ON tornado_outbox (id) WHERE failed_at IS NULL;
"""

# The rows travel as one JSON array of ``[tenant, task, payload, key, delay]``.
_ADD = f"""
WITH ins AS (
    INSERT INTO tornado_outbox (tenant, task, payload, idempotency_key, delay)
    SELECT r->>0, r->>1, r->2, r->>3, (r->>4)::float8
    FROM jsonb_array_elements(%(rows)s::jsonb) WITH ORDINALITY AS e (r, n)
    ORDER BY e.n
    RETURNING id
)
SELECT id, pg_notify('{CHANNEL}', '') FROM ins ORDER BY id
"""

_CLAIM = """
SELECT id, tenant, task, payload, idempotency_key, delay FROM tornado_outbox
WHERE failed_at IS NULL ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
"""

_FAIL = """
UPDATE tornado_outbox AS o SET failed_at = clock_timestamp(), error = v.error
FROM unnest(%(ids)s::bigint[], %(errors)s::text[]) AS v (id, error) WHERE o.id = v.id
"""

_STATUS = """
SELECT count(*) FILTER (WHERE failed_at IS NULL), count(*) FILTER (WHERE failed_at IS NOT NULL),
       extract(epoch FROM clock_timestamp() - min(created_at) FILTER (WHERE failed_at IS NULL))::float8
FROM tornado_outbox
"""

_FAILURES = """
SELECT id, tenant, task, error, failed_at FROM tornado_outbox
WHERE failed_at IS NOT NULL ORDER BY failed_at DESC, id DESC LIMIT %(limit)s
"""

_RETRY = f"""
WITH u AS (UPDATE tornado_outbox SET failed_at = NULL, error = NULL WHERE failed_at IS NOT NULL RETURNING 1)
SELECT count(*), pg_notify('{CHANNEL}', '') FROM u
"""

_MISSING_TABLE = "tornado_outbox table: run `tornado outbox install --database URL`"
_MISSING = f"this database has no {_MISSING_TABLE}"


class PostgresOutboxWriter:
    """Adds outbox rows with the caller's connection (``OutboxWriterPort``)."""

    def add(self, connection: Any, entries: Sequence[OutboxEntry]) -> list[int]:
        """Insert the entries in the caller's transaction; their rows exist once it commits.

        Raises:
            ConfigError: Not a psycopg2 connection in a transaction, or no ``tornado_outbox``.
        """
        if not entries:
            return []
        rows = [
            [e.tenant, e.task, orjson.Fragment(e.payload_json), e.idempotency_key, e.delay] for e in entries
        ]
        with savepoint(connection, needs=_MISSING_TABLE) as cur:
            cur.execute(_ADD, {"rows": orjson.dumps(rows).decode()})
            return [int(row[0]) for row in cur.fetchall()]


class _Batch:
    """Rows locked by one claim; settled in its transaction."""

    def __init__(self, cur: Cursor, rows: Sequence[OutboxRow]) -> None:
        self._cur = cur
        self.rows = rows

    def settle(self, sent: Sequence[int], failed: Mapping[int, str]) -> None:
        """Delete the sent rows, mark the failed ones (committed when the claim ends)."""
        # Losing this commit in a server crash only resubmits the rows: same job ids, one job each.
        if sent:
            self._cur.execute(
                without_flush_wait("DELETE FROM tornado_outbox WHERE id = ANY(%s)"), (list(sent),)
            )
        if failed:
            ids = list(failed)
            self._cur.execute(without_flush_wait(_FAIL), {"ids": ids, "errors": [failed[i] for i in ids]})


class PostgresOutbox:
    """The outbox as the relay and operators use it (``OutboxStorePort``).

    Args:
        pool: Pool of the application's database (the one holding ``tornado_outbox``).
    """

    def __init__(self, pool: PostgresPool) -> None:
        self._pool = pool
        self._listener: Connection | None = None

    def install(self) -> bool:
        """Create the table and its index if missing (safe to run concurrently); whether it was created."""
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (INSTALL_LOCK,))
            cur.execute("SELECT to_regclass('tornado_outbox') IS NULL")
            row = cur.fetchone()
            cur.execute(DDL)
        return bool(row and row[0])

    @contextlib.contextmanager
    def claim(self, limit: int) -> Iterator[_Batch]:
        """Lock up to ``limit`` pending rows, oldest first (see ``OutboxStorePort.claim``)."""
        with _explained(), self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(_CLAIM, {"limit": limit})
            rows = [
                OutboxRow(row_id=r[0], tenant=r[1], task=r[2], payload=r[3], idempotency_key=r[4], delay=r[5])
                for r in cur.fetchall()
            ]
            yield _Batch(cur, rows)

    def wait(self, timeout: float) -> None:
        """Return at the next commit of new rows, or after ``timeout`` seconds."""
        try:
            listener = self._listen()
            readable, _, _ = select.select([listener], [], [], timeout)
            if readable:
                listener.poll()
                listener.notifies.clear()
        except (psycopg2.Error, OSError, StoreUnavailable):
            self._drop_listener()
            time.sleep(timeout)  # no notices: poll at the pace of the timeout

    def status(self, *, failures: int = 20) -> OutboxStatus:
        """Counts of pending and failed rows, and the most recent failed ones."""
        with _explained(), self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(_STATUS)
            counts = cur.fetchone()
            cur.execute(_FAILURES, {"limit": failures})
            failed = [
                FailedRow(row_id=r[0], tenant=r[1], task=r[2], error=r[3] or "", failed_at=_epoch(r[4]))
                for r in cur.fetchall()
            ]
        assert counts is not None
        return OutboxStatus(
            pending=counts[0], failed=counts[1], oldest_pending_age=counts[2], failures=failed
        )

    def retry_failed(self) -> int:
        """Make the failed rows pending again (after the cause was fixed); returns how many."""
        with _explained(), self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(_RETRY)
            row = cur.fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        """Close the listening connection (the pool is closed by its owner)."""
        self._drop_listener()

    def _listen(self) -> Connection:
        if self._listener is None or self._listener.closed:
            conn = self._pool.new_connection(autocommit=True)
            with conn.cursor() as cur:
                cur.execute(f"LISTEN {CHANNEL}")
            self._listener = conn
        return self._listener

    def _drop_listener(self) -> None:
        if self._listener is not None:
            close_quietly(self._listener)
            self._listener = None


@contextlib.contextmanager
def _explained() -> Iterator[None]:
    """A missing table as a clear ``ConfigError``."""
    try:
        yield
    except psycopg2.errors.UndefinedTable:
        raise ConfigError(_MISSING) from None


def _epoch(value: datetime | None) -> float:
    return value.timestamp() if value is not None else 0.0
