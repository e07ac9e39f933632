"""Bulk actions in PostgreSQL (``tornado_bulk_actions``): leases, progress, and their batches.

A batch locks what it works on (the next matching jobs by job-id keyset for a cancel, the next letters
of a DLQ for the others), acts on it, and advances the action's position in the same transaction: a
batch is done once or not at all, so a resumed action never acts twice. No batch is held in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from psycopg2.extensions import cursor as Cursor
from psycopg2.extras import Json

from tornado_core.adapters.postgres.dead_letter_moves import SWEEP_START, sweep_batch
from tornado_core.adapters.postgres.job_queries import rows_of
from tornado_core.adapters.postgres.job_search import criteria_parts, criteria_sql
from tornado_core.adapters.postgres.pool import PostgresPool
from tornado_core.ports.console_jobs import (
    SWEEP_LETTERS,
    BatchOutcome,
    BulkActionKind,
    BulkActionRow,
    JobCriteria,
    Move,
    swept_queue,
)

_COLUMNS = (
    "id, action, filter, operator, status, matched, done, skipped, position, error, runner, created_at,"
    " updated_at, finished_at"
)
_LEASE = "clock_timestamp() + %(lease)s * interval '1 second'"

_CREATE = f"""
WITH t AS (SELECT clock_timestamp() AS at)
INSERT INTO tornado_bulk_actions
    (action, filter, operator, matched, runner, lease_expires_at, created_at, updated_at)
SELECT %(action)s, %(filter)s, %(operator)s,
       (SELECT count(*) FROM ({{matching}}) AS m),
       %(runner)s, t.at + %(lease)s * interval '1 second', t.at, t.at
FROM t
RETURNING {_COLUMNS}
"""

_ADOPT = f"""
UPDATE tornado_bulk_actions
SET runner = %(runner)s, lease_expires_at = {_LEASE}, updated_at = clock_timestamp()
WHERE id = (
    SELECT id FROM tornado_bulk_actions
    WHERE status = 'running' AND (lease_expires_at IS NULL OR lease_expires_at <= clock_timestamp())
    ORDER BY id LIMIT 1
    FOR UPDATE SKIP LOCKED
)
RETURNING {_COLUMNS}
"""

#: What a batch did: how many it saw, how many it changed, the action's new position (``None``: as it was).
_Acted = tuple[int, int, str | None]

# A batch reads the next rows in an index's order and finds their jobs by index, whatever the statistics
# say: rows written in bulk since the last ANALYZE made the planner sort every remaining row (or read
# every matching job) at each batch, which made a whole action quadratic. JIT would only add its
# compile time to every batch.
_KEYSET_PLANS = (
    "SET LOCAL enable_sort = off; SET LOCAL enable_bitmapscan = off; SET LOCAL enable_seqscan = off;"
    " SET LOCAL jit = off"
)

_HELD = "id = %(id)s AND runner = %(runner)s AND status = 'running'"

_PROGRESS = f"""
UPDATE tornado_bulk_actions SET done = done + %(done)s, skipped = skipped + %(skipped)s,
    position = COALESCE(%(position)s, position), lease_expires_at = {_LEASE}, updated_at = clock_timestamp()
WHERE {_HELD}
"""

_FINISH = f"""
UPDATE tornado_bulk_actions SET status = CASE WHEN %(error)s::text IS NULL THEN 'succeeded' ELSE 'failed' END,
    error = %(error)s, skipped = skipped + %(skipped)s, lease_expires_at = NULL,
    finished_at = clock_timestamp(), updated_at = clock_timestamp()
WHERE {_HELD}
RETURNING {_COLUMNS}
"""

# A cancel's batch in one statement: its waiting jobs are cancelled (scheduled ones unparked), running
# ones get the request their heartbeat reads, as JobStorePort.request_cancel does for one job.
_CANCEL_BATCH = """
WITH batch AS (
    SELECT j.job_id, j.status FROM tornado_jobs AS j
    WHERE {where} AND j.job_id > %(after)s AND j.created_at <= %(until)s
    ORDER BY j.job_id LIMIT %(size)s
    FOR UPDATE OF j
),
unparked AS (
    DELETE FROM tornado_scheduled_jobs WHERE job_id IN (SELECT job_id FROM batch WHERE status = 'scheduled')
),
changed AS (
    UPDATE tornado_jobs AS j SET
        status = CASE WHEN b.status = 'running' THEN j.status ELSE 'cancelled' END,
        finished_at = CASE WHEN b.status = 'running' THEN j.finished_at ELSE clock_timestamp() END,
        cancel_requested_at = COALESCE(j.cancel_requested_at, clock_timestamp()),
        updated_at = clock_timestamp()
    FROM batch AS b  -- primary-key look-ups (= ANY): a join could read every matching job at each batch
    WHERE j.job_id = ANY(ARRAY(SELECT job_id FROM batch)) AND j.job_id = b.job_id
      AND b.status IN ('scheduled', 'queued', 'retrying', 'running')
    RETURNING 1
)
SELECT (SELECT count(*) FROM batch), (SELECT count(*) FROM changed), (SELECT max(job_id) FROM batch)
"""

_FAIL_DEAD = """
WITH doomed AS (
    SELECT j.job_id FROM tornado_jobs AS j
    WHERE {where} AND j.status = 'dead' AND j.created_at <= %(until)s
    LIMIT %(size)s
    FOR UPDATE SKIP LOCKED
)
UPDATE tornado_jobs AS j SET status = 'failed', finished_at = COALESCE(j.finished_at, clock_timestamp()),
    lease_expires_at = NULL, updated_at = clock_timestamp()
WHERE j.job_id = ANY(ARRAY(SELECT job_id FROM doomed))
"""


def _row(row: Sequence[Any]) -> BulkActionRow:
    created, updated, finished = (
        value.astimezone(UTC) if value is not None else None for value in row[11:14]
    )
    assert created is not None and updated is not None
    return BulkActionRow(
        id=row[0], action=BulkActionKind(row[1]), filter=row[2], operator=row[3], status=row[4],
        matched=row[5], done=row[6], skipped=row[7], position=row[8], error=row[9], runner=row[10],
        created_at=created, updated_at=updated, finished_at=finished,
    )  # fmt: skip


def _letter_position(position: str) -> tuple[datetime, int]:
    """The ``(visible_at, id)`` of the last letter a position of a sweep names."""
    _, _, at, row_id = position.split("|")
    return datetime.fromisoformat(at), int(row_id)


class PostgresBulkActions:
    """:class:`~tornado_core.ports.console_jobs.BulkActionStorePort` on the job-store database.

    Args:
        pool: Pool of the job-store database (where the PostgreSQL queue's dead letters also are,
            when that is the queue: :meth:`sweep_letters` moves them).
    """

    def __init__(self, pool: PostgresPool) -> None:
        self._pool = pool

    def _one(self, sql: str, params: Any) -> BulkActionRow | None:
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            row = cur.fetchone()
        return _row(row) if row is not None else None

    def create(
        self,
        action: BulkActionKind,
        filter_json: Mapping[str, Any],
        *,
        criteria: JobCriteria,
        operator: str,
        runner: str,
        lease_seconds: float,
    ) -> BulkActionRow:
        """Record a running action held by ``runner``, counting the jobs that match now."""
        where, params = criteria_sql(criteria)
        params.update(
            action=str(action), filter=Json(dict(filter_json)), operator=operator, runner=runner,
            lease=float(lease_seconds),
        )  # fmt: skip
        parts = criteria_parts(criteria, f"{where} AND j.created_at <= t.at")
        created = self._one(_CREATE.format(matching=rows_of("1", "tornado_jobs AS j", parts)), params)
        assert created is not None
        return created

    def get(self, action_id: int) -> BulkActionRow | None:
        """One action, or ``None``."""
        return self._one(f"SELECT {_COLUMNS} FROM tornado_bulk_actions WHERE id = %s", (action_id,))

    def recent(self, limit: int) -> list[BulkActionRow]:
        """The latest actions, newest first."""
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(f"SELECT {_COLUMNS} FROM tornado_bulk_actions ORDER BY id DESC LIMIT %s", (limit,))
            return [_row(row) for row in cur.fetchall()]

    def adopt(self, runner: str, *, lease_seconds: float) -> BulkActionRow | None:
        """Take the oldest running action whose lease ran out."""
        return self._one(_ADOPT, {"runner": runner, "lease": float(lease_seconds)})

    def release(self, action_id: int, *, runner: str) -> None:
        """End the lease now, so that another process resumes the action."""
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(
                f"UPDATE tornado_bulk_actions SET lease_expires_at = clock_timestamp() WHERE {_HELD}",
                {"id": action_id, "runner": runner},
            )

    def cancel_batch(
        self, action_id: int, *, runner: str, criteria: JobCriteria, size: int, lease_seconds: float
    ) -> BatchOutcome:
        """Cancel the next ``size`` matching jobs after the position (by job id), with the progress."""

        def cancel(cur: Cursor, where: str, params: dict[str, Any], position: str | None) -> _Acted:
            cur.execute(_CANCEL_BATCH.format(where=where), {**params, "after": position or "", "size": size})
            row = cur.fetchone()
            assert row is not None
            return int(row[0]), int(row[1]), row[2]

        return self._batch(action_id, runner, criteria, lease_seconds, cancel)

    def sweep_letters(
        self,
        action_id: int,
        *,
        runner: str,
        criteria: JobCriteria,
        move: Move,
        size: int,
        lease_seconds: float,
    ) -> BatchOutcome:
        """Act on the next ``size`` letters of ``move``'s DLQ whose jobs match, with the progress."""
        dlq = move.dead_letter_queue

        def sweep(cur: Cursor, where: str, params: dict[str, Any], position: str | None) -> _Acted:
            after = _letter_position(position) if position and swept_queue(position) == dlq else SWEEP_START
            swept = sweep_batch(cur, move, where=where, params=params, after=after, size=size)
            last = swept.last
            return (
                swept.seen,
                swept.done,
                f"{SWEEP_LETTERS}|{dlq}|{last[0].isoformat()}|{last[1]}" if last else None,
            )

        return self._batch(action_id, runner, criteria, lease_seconds, sweep, count_skipped=False)

    def fail_dead(
        self, action_id: int, *, runner: str, criteria: JobCriteria, size: int, lease_seconds: float
    ) -> BatchOutcome:
        """Mark up to ``size`` matching dead jobs ``failed``, and count them done, in one commit."""

        def fail(cur: Cursor, where: str, params: dict[str, Any], position: str | None) -> _Acted:
            cur.execute(_FAIL_DEAD.format(where=where), {**params, "size": size})
            return int(cur.rowcount), int(cur.rowcount), None

        return self._batch(action_id, runner, criteria, lease_seconds, fail)

    def _batch(
        self,
        action_id: int,
        runner: str,
        criteria: JobCriteria,
        lease_seconds: float,
        act: Callable[[Cursor, str, dict[str, Any], str | None], _Acted],
        *,
        count_skipped: bool = True,
    ) -> BatchOutcome:
        """Lock the action if ``runner`` holds it, ``act``, and write the progress, in one commit.

        ``act(cursor, the filter's condition, its parameters with "until", position)`` answers how many it
        saw, how many it changed and the new position; what it saw and left is skipped if ``count_skipped``.
        """
        held = {"id": action_id, "runner": runner}
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(
                f"SELECT position, created_at FROM tornado_bulk_actions WHERE {_HELD} FOR UPDATE", held
            )
            state = cur.fetchone()
            if state is None:
                return BatchOutcome(held=False)
            where, params = criteria_sql(criteria)
            cur.execute(_KEYSET_PLANS)
            seen, done, position = act(cur, where, {**params, "until": state[1]}, state[0])
            skipped = seen - done if count_skipped else 0
            progress = {"done": done, "skipped": skipped, "position": position, "lease": lease_seconds}
            cur.execute(_PROGRESS, {**held, **progress})
        return BatchOutcome(held=True, seen=seen, done=done, skipped=skipped)

    def add_progress(
        self,
        action_id: int,
        *,
        runner: str,
        done: int = 0,
        skipped: int = 0,
        position: str | None = None,
        lease_seconds: float,
    ) -> bool:
        """Add to the counts, set the position if given, renew the lease; ``False`` if not held."""
        params = {"id": action_id, "runner": runner, "done": done, "skipped": skipped, "position": position}
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(_PROGRESS, {**params, "lease": float(lease_seconds)})
            return bool(cur.rowcount)

    def finish(
        self, action_id: int, *, runner: str, error: str | None = None, skipped: int = 0
    ) -> BulkActionRow | None:
        """End the action, ``failed`` with ``error`` or ``succeeded``; ``None`` if not held."""
        return self._one(_FINISH, {"id": action_id, "runner": runner, "error": error, "skipped": skipped})
