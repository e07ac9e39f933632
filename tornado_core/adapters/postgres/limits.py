"""Concurrency caps on PostgreSQL session advisory locks, and rate limits as token buckets in a table."""

from __future__ import annotations

import contextlib
import threading
import zlib
from collections.abc import Sequence

import psycopg2
from psycopg2.extensions import connection as Connection

from tornado_core.adapters.postgres.pool import UNREACHABLE, PostgresPool, close_quietly, connect, is_usable
from tornado_core.errors import StoreUnavailable

# Takes the first free slots in 0..limit-1; evaluation stops once ``count`` locks are won.
_TRY_SLOTS = """
SELECT slot FROM generate_series(0, %(limit)s - 1) AS slot
WHERE pg_try_advisory_lock(%(key)s, slot)
LIMIT %(count)s
"""

_UNLOCK = "SELECT pg_advisory_unlock(%(key)s, slot) FROM unnest(%(slots)s::int[]) AS slot"


def task_key(task: str) -> int:
    """A stable signed 32-bit key for ``task`` (Python's ``hash`` varies per process)."""
    value = zlib.crc32(task.encode("utf-8"))
    return value - (1 << 32) if value >= (1 << 31) else value


class PostgresLimiter:
    """Slots per task shared by every process using the same database.

    A slot is the session advisory lock ``(task_key(task), slot)``, so the slots of a
    process that dies (even by SIGKILL) are released as soon as PostgreSQL sees its
    connections close. Slots taken together share a connection, which holds nothing
    else (advisory locks are re-entrant within a session) and goes back to the idle
    ones once its last slot is released. Thread-safe.

    Args:
        dsn: libpq connection string or URL.
        max_idle: Idle connections kept for reuse.
    """

    def __init__(self, dsn: str, *, max_idle: int = 16) -> None:
        self._dsn = dsn
        self._max_idle = max_idle
        self._idle: list[Connection] = []
        self._lock = threading.Lock()

    def try_acquire(self, task: str, limit: int) -> contextlib.AbstractContextManager[None] | None:
        """Take a free slot of ``task``, or return ``None`` at once if all are held.

        Raises:
            StoreUnavailable: PostgreSQL cannot be reached.
        """
        slots = self.try_acquire_many(task, limit, 1)
        return slots[0] if slots else None

    def try_acquire_many(
        self, task: str, limit: int, count: int
    ) -> list[contextlib.AbstractContextManager[None]]:
        """Take up to ``count`` free slots of ``task`` in one statement (none if all are held).

        Raises:
            StoreUnavailable: PostgreSQL cannot be reached.
        """
        if limit < 1 or count < 1:
            return []
        key = task_key(task)
        conn = self._borrow()
        try:
            with conn.cursor() as cur:
                cur.execute(_TRY_SLOTS, {"limit": limit, "key": key, "count": count})
                won = [int(row[0]) for row in cur.fetchall()]
        except UNREACHABLE as exc:
            close_quietly(conn)
            raise StoreUnavailable(f"concurrency limiter: PostgreSQL failed: {exc}") from exc
        if not won:
            self._return(conn)
            return []
        session = _SlotSession(self, conn, key, won)
        return [_Slot(session, slot) for slot in won]

    def release_many(self, slots: Sequence[contextlib.AbstractContextManager[None]]) -> None:
        """Release slots handed to no job: one statement per connection holding them."""
        by_session: dict[_SlotSession, list[int]] = {}
        for slot in slots:
            if isinstance(slot, _Slot):
                by_session.setdefault(slot.session, []).append(slot.number)
            else:
                slot.__exit__(None, None, None)
        for session, numbers in by_session.items():
            session.release(numbers)

    def _borrow(self) -> Connection:
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return connect(self._dsn, autocommit=True)
            if is_usable(conn):
                return conn
            close_quietly(conn)

    def _return(self, conn: Connection) -> None:
        with self._lock:
            if len(self._idle) < self._max_idle and not conn.closed:
                self._idle.append(conn)
                return
        close_quietly(conn)

    def close(self) -> None:
        """Close idle connections (slots still held are released when their block ends)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            close_quietly(conn)


class _SlotSession:
    """A connection holding slots of one task; back to the limiter's idle ones once all are released."""

    def __init__(self, limiter: PostgresLimiter, conn: Connection, key: int, slots: list[int]) -> None:
        self._limiter = limiter
        self._conn = conn
        self._key = key
        self._held = set(slots)
        self._lock = threading.Lock()
        self._broken = False

    def release(self, slots: list[int]) -> None:
        """Unlock ``slots`` (those still held) in one statement."""
        with self._lock:
            numbers = [n for n in slots if n in self._held]
            if not numbers:
                return
            self._held.difference_update(numbers)
            if not self._broken:
                try:
                    with self._conn.cursor() as cur:
                        cur.execute(_UNLOCK, {"key": self._key, "slots": numbers})
                except psycopg2.Error:
                    close_quietly(self._conn)  # the server dropped the session and its locks with it
                    self._broken = True
            done = not self._held and not self._broken
        if done:
            self._limiter._return(self._conn)


class _Slot(contextlib.AbstractContextManager[None]):
    """One slot of a session: released on exit."""

    def __init__(self, session: _SlotSession, number: int) -> None:
        self.session = session
        self.number = number

    def __exit__(self, *_exc: object) -> None:
        self.session.release([self.number])


# One statement takes a token: the bucket refills for the time since it was last touched, up to
# its capacity; the row lock serialises concurrent takers. No row back: no token.
_TAKE = """
INSERT INTO tornado_rate_buckets AS b (key, tokens, refreshed_at)
VALUES (%(key)s, %(capacity)s - 1, clock_timestamp())
ON CONFLICT (key) DO UPDATE SET
    tokens = LEAST(%(capacity)s,
                   b.tokens + extract(epoch FROM clock_timestamp() - b.refreshed_at) * %(rate)s) - 1,
    refreshed_at = clock_timestamp()
WHERE LEAST(%(capacity)s, b.tokens + extract(epoch FROM clock_timestamp() - b.refreshed_at) * %(rate)s) >= 1
RETURNING tokens
"""

_WAIT = """
SELECT (1 - LEAST(%(capacity)s, tokens + extract(epoch FROM clock_timestamp() - refreshed_at) * %(rate)s))
       / %(rate)s
FROM tornado_rate_buckets WHERE key = %(key)s
"""


class PostgresRateLimiter:
    """:class:`~tornado_core.ports.limits.RateLimiterPort`: token buckets in ``tornado_rate_buckets``.

    Args:
        pool: Connections to the job store's database.
    """

    def __init__(self, pool: PostgresPool) -> None:
        self._pool = pool

    def try_take(self, key: str, *, per_second: float, capacity: float) -> float:
        """Take a token of ``key``, or say how long until one is due."""
        params = {"key": key, "rate": per_second, "capacity": capacity}
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(_TAKE, params)
            if cur.fetchone() is not None:
                return 0.0
            cur.execute(_WAIT, params)
            row = cur.fetchone()
        return max(0.001, float(row[0])) if row else 0.001
