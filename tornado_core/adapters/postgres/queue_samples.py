"""Queue samples in PostgreSQL (``tornado_queue_samples``): one recorder per interval across processes."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from psycopg2.extras import execute_values

from tornado_core.adapters.postgres.pool import PostgresPool
from tornado_core.ports.insights import QueueSample, QueueSnapshot

#: Transaction-level advisory lock of the recorders (a stable key, derived from a fixed name).
LOCK_KEY = int.from_bytes(hashlib.sha256(b"tornado-queue-samples").digest()[:8], "big", signed=True)

_COLUMNS = "task, version, queue, visible, in_flight, delayed, dead_letters, oldest_age, at"

_INSERT = f"""
INSERT INTO tornado_queue_samples ({_COLUMNS}) VALUES %s ON CONFLICT (queue, at) DO NOTHING
"""


def _values(s: QueueSnapshot) -> tuple[Any, ...]:
    return (s.task, s.version, s.queue, s.visible, s.in_flight, s.delayed, s.dead_letters, s.oldest_age)


def _sample(row: Sequence[Any]) -> QueueSample:
    return QueueSample(
        task=row[0], version=row[1], queue=row[2], visible=row[3], in_flight=row[4], delayed=row[5],
        dead_letters=row[6], oldest_age=row[7], at=row[8].astimezone(UTC),
    )  # fmt: skip


class PostgresQueueSamples:
    """Queue snapshots kept over time (see :class:`QueueSamplesPort`), read back by queue and time.

    Args:
        pool: Pool of the job-store database (migration ``0012_console``).
    """

    def __init__(self, pool: PostgresPool) -> None:
        self._pool = pool

    def record_due(
        self, at: datetime, take: Callable[[], Sequence[QueueSnapshot]], *, interval: float
    ) -> int | None:
        """Record ``take()`` at ``at`` under the recorders' lock, unless one is younger than ``interval``.

        The lock is held by this transaction only (``pg_try_advisory_xact_lock``): a recorder that
        finds it taken skips its turn instead of waiting, and one that dies frees it.
        """
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_xact_lock(%s)", (LOCK_KEY,))
            row = cur.fetchone()
            if not (row and row[0]):
                return None
            cur.execute(
                "SELECT EXISTS (SELECT 1 FROM tornado_queue_samples"
                " WHERE at > %(at)s - %(interval)s * interval '1 second')",
                {"at": at, "interval": float(interval)},
            )
            recent = cur.fetchone()
            if recent and recent[0]:
                return None
            rows = [(*_values(s), at) for s in take()]
            if not rows:
                return 0
            execute_values(cur, _INSERT, rows, page_size=len(rows))  # one statement: rowcount is its own
            return int(cur.rowcount)

    def prune(self, before: datetime) -> int:
        """Delete the samples taken before ``before``; returns how many."""
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute("DELETE FROM tornado_queue_samples WHERE at < %s", (before,))
            return int(cur.rowcount)

    def series(self, queue: str, *, since: datetime) -> list[QueueSample]:
        """The samples of ``queue`` taken at or after ``since``, oldest first (by its primary key)."""
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(
                f"SELECT {_COLUMNS} FROM tornado_queue_samples WHERE queue = %s AND at >= %s ORDER BY at",
                (queue, since),
            )
            return [_sample(row) for row in cur.fetchall()]
