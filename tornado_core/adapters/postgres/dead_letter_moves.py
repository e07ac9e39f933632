"""Dead letters of the PostgreSQL queue moved in SQL: one by its message id, or a DLQ's swept in batches.

Messages carry their job id only in their body (the envelope's first field): a sweep reads it out of
each letter it reads, once, and finds the letter's job by its primary key.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg2.extensions import cursor as Cursor

from tornado_core.adapters.postgres._listener import CHANNEL
from tornado_core.adapters.postgres.pool import PostgresPool
from tornado_core.errors import QueueUnavailable, StoreUnavailable
from tornado_core.ports.console_jobs import Letter, Move

#: The job id of an envelope's JSON text (compact, or with spaces around the colon).
JOB_ID_PATTERN = r'"job_id"\s*:\s*"([^"\\]*)"'
#: The tenant of an envelope's JSON text.
TENANT_PATTERN = r'"tenant"\s*:\s*"([^"\\]*)"'
#: An envelope's version field (its first ``"version"``: the envelope's own comes before the payload).
VERSION_PATTERN = r'"version"\s*:\s*"[^"\\]*"'
#: Where a sweep of a DLQ starts: before its first letter, as ``(visible_at, id)``.
SWEEP_START = (datetime(1, 1, 1, tzinfo=UTC), 0)

_MOVE_ONE = """
WITH old AS (
    SELECT id, message_id, body FROM tornado_messages
    WHERE queue = %(queue)s AND message_id = %(message_id)s::uuid
    FOR UPDATE
)
UPDATE tornado_messages AS m SET
    queue = %(target)s, visible_at = clock_timestamp(), receive_count = 0, receipt = NULL,
    message_group = CASE WHEN %(fair)s THEN COALESCE(m.message_group, substring(m.body FROM %(tenant)s)) END,
    body = CASE WHEN %(replacement)s::text IS NULL THEN m.body
                ELSE regexp_replace(m.body, %(version)s, %(replacement)s::text) END
FROM old AS o
WHERE m.id = o.id
RETURNING o.message_id::text, o.body
"""

# The next letters of a DLQ in (visible_at, id) order, the receive index's. The order holds still: no
# worker receives from a DLQ, and a letter moved out leaves it. The letters of matching dead jobs are
# moved (or deleted) and those jobs settled, in one statement.
_SWEEP = """
WITH letters AS (
    SELECT m.id, m.visible_at, substring(m.body FROM %(job_id)s) AS job_id
    FROM tornado_messages AS m
    WHERE m.queue = %(dlq)s AND (m.visible_at, m.id) > (%(after_at)s::timestamptz, %(after_id)s::bigint)
    ORDER BY m.visible_at, m.id
    LIMIT %(size)s
    FOR UPDATE OF m
),
chosen AS (  -- primary-key look-ups (= ANY): a join could read every matching job at each batch
    SELECT l.id, j.job_id, j.tenant FROM tornado_jobs AS j JOIN letters AS l ON l.job_id = j.job_id
    WHERE j.job_id = ANY(ARRAY(SELECT job_id FROM letters)) AND j.status = 'dead'
      AND j.created_at <= %(until)s AND {where}
    FOR UPDATE OF j
),
acted AS ({act}),
settled AS (
    UPDATE tornado_jobs AS j SET {settle}, lease_expires_at = NULL, updated_at = clock_timestamp()
    WHERE j.job_id = ANY(ARRAY(SELECT job_id FROM acted)) AND j.status = 'dead'
    RETURNING 1
),
last AS (SELECT visible_at, id FROM letters ORDER BY visible_at DESC, id DESC LIMIT 1)
SELECT (SELECT count(*) FROM letters), (SELECT count(*) FROM settled), (SELECT visible_at FROM last),
       (SELECT id FROM last)
"""

_MOVE = """
    UPDATE tornado_messages AS m SET
        queue = %(target)s, visible_at = clock_timestamp(), receive_count = 0, receipt = NULL,
        message_group = CASE WHEN %(fair)s THEN COALESCE(m.message_group, c.tenant) END,
        body = regexp_replace(m.body, %(version)s, %(replacement)s)
    FROM chosen AS c WHERE m.id = c.id
    RETURNING c.job_id
"""
_REQUEUE = "status = 'queued', version = %(target_version)s, finished_at = NULL"

_PURGE = "DELETE FROM tornado_messages AS m USING chosen AS c WHERE m.id = c.id RETURNING c.job_id"
_FAIL = "status = 'failed', finished_at = COALESCE(j.finished_at, clock_timestamp())"


@dataclass(frozen=True)
class Swept:
    """One batch of a sweep: letters read, jobs settled, the last letter read (``None``: none read)."""

    seen: int
    done: int
    last: tuple[datetime, int] | None


def version_replacement(version: str) -> str:
    """The ``regexp_replace`` replacement that sets an envelope's version to ``version``."""
    return ('"version":' + json.dumps(version)).replace("\\", "\\\\")


def _notify(cur: Cursor, queues: Sequence[str]) -> None:
    """Wake the long polls of ``queues`` when the transaction commits."""
    if queues:
        cur.execute("SELECT pg_notify(%s, q) FROM unnest(%s::text[]) AS q", (CHANNEL, list(queues)))


def sweep_batch(
    cur: Cursor, move: Move, *, where: str, params: dict[str, Any], after: tuple[datetime, int], size: int
) -> Swept:
    """Act on the next ``size`` letters of ``move``'s DLQ after ``after``, in the cursor's transaction.

    Args:
        cur: A cursor whose transaction the caller commits.
        move: The DLQ, where its letters go (``None``: deleted) and the version they take.
        where: The jobs' filter on ``tornado_jobs AS j``; ``params``: its parameters and ``until``
            (the newest creation time of a job the action takes).
        after: The last letter read before, ``(visible_at, id)``.
        size: Letters to read.
    """
    values = {**params, "job_id": JOB_ID_PATTERN, "dlq": move.dead_letter_queue, "size": size}
    values.update(after_at=after[0], after_id=after[1])
    if move.target_queue is None:
        sql = _SWEEP.format(where=where, act=_PURGE, settle=_FAIL)
    else:
        cur.execute("SELECT fair FROM tornado_queues WHERE name = %s", (move.target_queue,))
        target = cur.fetchone()
        if target is None:  # the version's queue is not in this database: nothing can go there
            return Swept(0, 0, None)
        values.update(
            target=move.target_queue, fair=bool(target[0]), version=VERSION_PATTERN,
            replacement=version_replacement(move.version), target_version=move.version,
        )  # fmt: skip
        sql = _SWEEP.format(where=where, act=_MOVE, settle=_REQUEUE)
    cur.execute(sql, values)
    row = cur.fetchone()
    assert row is not None
    if move.target_queue is not None and row[1]:
        _notify(cur, [move.target_queue])
    return Swept(int(row[0]), int(row[1]), (row[2], int(row[3])) if row[0] else None)


def _message_uuid(message_id: str) -> str | None:
    try:
        return str(uuid.UUID(message_id))
    except ValueError:
        return None


class PostgresDeadLetters:
    """:class:`~tornado_core.ports.console_jobs.DeadLetterStorePort` on the PostgreSQL queue's table.

    Args:
        pool: Pool of the queue's database.

    Methods raise ``QueueUnavailable`` when PostgreSQL cannot be reached.
    """

    def __init__(self, pool: PostgresPool) -> None:
        self._pool = pool

    @contextlib.contextmanager
    def _cursor(self) -> Iterator[Cursor]:
        try:
            with self._pool.connection() as conn, conn.cursor() as cur:
                yield cur
        except StoreUnavailable as exc:
            raise QueueUnavailable(f"PostgreSQL queue unavailable: {exc}") from exc

    def letters(self, dead_letter_queue: str, *, limit: int) -> list[Letter]:
        """The queue's oldest ``limit`` messages, left in it."""
        with self._cursor() as cur:
            cur.execute(
                "SELECT message_id::text, body FROM tornado_messages WHERE queue = %s ORDER BY id LIMIT %s",
                (dead_letter_queue, limit),
            )
            return [Letter(row[0], row[1]) for row in cur.fetchall()]

    def letter(self, dead_letter_queue: str, message_id: str) -> Letter | None:
        """One message, left in the queue."""
        return self._by_id(
            "SELECT message_id::text, body FROM tornado_messages", dead_letter_queue, message_id
        )

    def _by_id(self, statement: str, queue: str, message_id: str, *, then: str = "") -> Letter | None:
        """``statement`` on the message of ``queue`` with that id (``then`` after the condition), which
        answers ``(message_id, body)``."""
        key = _message_uuid(message_id)
        if key is None:
            return None
        with self._cursor() as cur:
            cur.execute(f"{statement} WHERE queue = %s AND message_id = %s::uuid{then}", (queue, key))
            row = cur.fetchone()
        return Letter(row[0], row[1]) if row else None

    def move(
        self, dead_letter_queue: str, message_id: str, *, to_queue: str, version: str | None = None
    ) -> Letter | None:
        """Move one message to ``to_queue`` (re-pinned to ``version`` if given), visible at once.

        Raises:
            QueueUnavailable: ``to_queue`` does not exist.
        """
        key = _message_uuid(message_id)
        if key is None:
            return None
        with self._cursor() as cur:
            cur.execute("SELECT fair FROM tornado_queues WHERE name = %s", (to_queue,))
            target = cur.fetchone()
            if target is None:
                raise QueueUnavailable(f"queue {to_queue} does not exist")
            params = {
                "queue": dead_letter_queue, "message_id": key, "target": to_queue, "fair": bool(target[0]),
                "tenant": TENANT_PATTERN, "version": VERSION_PATTERN,
                "replacement": version_replacement(version) if version is not None else None,
            }  # fmt: skip
            cur.execute(_MOVE_ONE, params)
            row = cur.fetchone()
            if row is not None:
                _notify(cur, [to_queue])
        return Letter(row[0], row[1]) if row else None

    def delete(self, dead_letter_queue: str, message_id: str) -> Letter | None:
        """Delete one message for good."""
        return self._by_id(
            "DELETE FROM tornado_messages",
            dead_letter_queue,
            message_id,
            then=" RETURNING message_id::text, body",
        )

    def find(self, queues: Sequence[str], job_id: str) -> tuple[str, Letter] | None:
        """A message of ``job_id`` in one of ``queues`` (reads each message's job id: for one job's page)."""
        with self._cursor() as cur:
            cur.execute(
                "SELECT queue, message_id::text, body FROM tornado_messages WHERE queue = ANY(%(queues)s)"
                " AND strpos(body, %(quoted)s) > 0 AND substring(body FROM %(pattern)s) = %(job_id)s"
                " ORDER BY id LIMIT 1",
                {
                    "queues": list(queues),
                    "quoted": f'"{job_id}"',
                    "pattern": JOB_ID_PATTERN,
                    "job_id": job_id,
                },
            )
            row = cur.fetchone()
        return (row[0], Letter(row[1], row[2])) if row else None
