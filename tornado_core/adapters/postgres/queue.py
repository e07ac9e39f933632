"""A PostgreSQL queue with the semantics of Amazon SQS standard queues.

Messages live in ``tornado_messages``. A receive claims visible messages with
``SELECT ... FOR UPDATE SKIP LOCKED`` (oldest first), counts the receive, issues
a fresh receipt token and hides them for the visibility timeout; a message that
was already received ``max_receive_count`` times is moved to the dead-letter
queue instead, in the same statement. All times come from the database clock.

Long polls sleep until a ``NOTIFY`` from a sender (or a change of visibility),
until the next hidden message is due to become visible, or for at most
:data:`IDLE_RECHECK` seconds; without a listening connection they re-poll
every ``fallback_poll`` seconds.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from psycopg2.extensions import cursor as Cursor

from tornado_core.adapters.postgres._listener import CHANNEL, QueueListener
from tornado_core.adapters.postgres.pool import PostgresPool, without_flush_wait
from tornado_core.adapters.postgres.prepared import Prepared
from tornado_core.adapters.postgres.queue_sql import RECEIVE, RECEIVE_FAIR
from tornado_core.errors import QueueUnavailable, StoreUnavailable
from tornado_core.ports.queue import OutgoingMessage, QueueDepth, QueueSpec, ReceivedMessage

#: Longest a long poll sleeps without re-checking the table.
IDLE_RECHECK = 1.0


def _send_sql(join: str) -> str:
    return f"""
WITH ins AS (
    INSERT INTO tornado_messages (queue, body, visible_at, message_group)
    SELECT q.name, v.body, clock_timestamp() + COALESCE(v.delay, 0) * interval '1 second',
           CASE WHEN q.fair THEN v.grp END
    FROM unnest(%(bodies)s, %(delays)s, %(groups)s) AS v (body, delay, grp)
    {join} tornado_queues q ON q.name = %(queue)s
    RETURNING queue
)
SELECT count(*), CASE WHEN count(*) > 0 THEN pg_notify('{CHANNEL}', min(queue)) END FROM ins
"""


_SEND_TYPES = {"bodies": "text[]", "delays": "float8[]", "groups": "text[]", "queue": "text"}
#: Stores nothing if the queue does not exist, and says so by its count (:func:`insert_messages` reads it).
_SEND_PREPARED = Prepared("tornado_send", _send_sql("JOIN"), _SEND_TYPES)
#: Fails if the queue does not exist (its rows would have a null ``queue``), which rolls back the
#: transaction with it: for a message of statements whose results are not read in between.
_SEND_OR_FAIL_PREPARED = Prepared("tornado_send_or_fail", _send_sql("LEFT JOIN"), _SEND_TYPES)

# A worker's connection plans its receive once, often on an empty queue: pinned to the indexes, a
# burst that fills the queue later is not read whole at every receive.
_RECEIVE_PREPARED = Prepared(
    "tornado_receive", RECEIVE, {"queue": "text", "limit": "int", "visibility": "float8"}, by_index=True
)

_RECEIVE_FAIR_PREPARED = Prepared(
    "tornado_receive_fair",
    RECEIVE_FAIR,
    {"queue": "text", "limit": "int", "visibility": "float8"},
    by_index=True,
)

# Primary-key lookups (``id = ANY``): the cost does not grow with the queue's depth, whatever the
# table's statistics say (a join on unnest() turned into a hash join over the whole backlog). The queue
# is compared with IS NOT DISTINCT FROM (the column is never null), which no index serves: a plan made
# on a nearly empty queue would otherwise walk the receive index over every message of the queue.
_DELETE = """
WITH d AS (
    DELETE FROM tornado_messages m
    WHERE m.id = ANY(%(ids)s::bigint[]) AND m.queue IS NOT DISTINCT FROM %(queue)s
      AND (m.id, m.receipt) IN (SELECT * FROM unnest(%(ids)s::bigint[], %(tokens)s::uuid[]))
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM tornado_queues WHERE name = %(queue)s), (SELECT count(*) FROM d)
"""

_DELETE_PREPARED = Prepared(
    "tornado_delete", _DELETE, {"ids": "bigint[]", "queue": "text", "tokens": "text[]"}, by_index=True
)

_CHANGE_VISIBILITY = f"""
WITH u AS (
    UPDATE tornado_messages
    SET visible_at = clock_timestamp() + %(timeout)s * interval '1 second'
    WHERE id = %(id)s AND receipt = %(token)s AND queue = %(queue)s
    RETURNING queue
)
SELECT pg_notify('{CHANNEL}', queue) FROM u
"""

_DEPTH = """
SELECT EXISTS (SELECT 1 FROM tornado_queues WHERE name = %(queue)s),
       count(*) FILTER (WHERE m.visible_at <= t.now),
       count(*) FILTER (WHERE m.visible_at > t.now AND m.receive_count > 0),
       count(*) FILTER (WHERE m.visible_at > t.now AND m.receive_count = 0)
FROM (SELECT clock_timestamp() AS now) AS t
LEFT JOIN tornado_messages m ON m.queue = %(queue)s
"""

_ENSURE = """
INSERT INTO tornado_queues (name, dead_letter_name, max_receive_count, visibility_timeout)
VALUES (%(dlq)s, NULL, NULL, %(visibility)s)
ON CONFLICT (name) DO NOTHING;
INSERT INTO tornado_queues (name, dead_letter_name, max_receive_count, visibility_timeout)
VALUES (%(name)s, %(dlq)s, %(max)s, %(visibility)s)
ON CONFLICT (name) DO UPDATE SET
    dead_letter_name = EXCLUDED.dead_letter_name,
    max_receive_count = EXCLUDED.max_receive_count,
    visibility_timeout = EXCLUDED.visibility_timeout;
-- A version is fair or not for good: a process that knows it only by contract cannot unset it.
UPDATE tornado_queues SET fair = true WHERE name = %(name)s AND %(fair)s AND NOT fair
"""


@dataclass(frozen=True)
class _Poll:
    """What one receive attempt found."""

    messages: list[ReceivedMessage]
    moved: int
    next_visible_in: float | None


def missing_queue(queue: str) -> QueueUnavailable:
    """The error of a send to a queue that does not exist."""
    return QueueUnavailable(f"queue {queue} does not exist")


#: A receipt as :meth:`PostgresQueue.receive` issues it: ``<row id>:<uuid token>``.
_RECEIPT = re.compile(r"([0-9]{1,18}):([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")


def _parse_receipt(receipt: str) -> tuple[int, str] | None:
    """``(message row id, token)`` of a receipt, or ``None`` if malformed."""
    match = _RECEIPT.fullmatch(receipt)
    return (int(match[1]), match[2]) if match else None


def insert_messages(cur: Cursor, queue: str, messages: Sequence[OutgoingMessage]) -> None:
    """Store messages with one multi-row ``INSERT``, in the cursor's transaction (committed by the caller).

    The ``NOTIFY`` that wakes long polls goes with it, delivered when that transaction commits.

    Raises:
        QueueUnavailable: The queue does not exist (the caller's transaction must roll back).
    """
    _SEND_PREPARED.execute(cur, _send_params(queue, messages))
    row = cur.fetchone()
    if row is None or row[0] != len(messages):
        raise missing_queue(queue)


def send_statement(queue: str, messages: Sequence[OutgoingMessage]) -> tuple[Prepared, dict[str, Any]]:
    """The statement of :func:`insert_messages` and its parameters, to send with others.

    Where the queue does not exist it fails with ``psycopg2.errors.NotNullViolation`` (the
    transaction rolls back): :func:`missing_queue` names the error to raise then.
    """
    return _SEND_OR_FAIL_PREPARED, _send_params(queue, messages)


def _send_params(queue: str, messages: Sequence[OutgoingMessage]) -> dict[str, Any]:
    delays = [float(m.delay) for m in messages] if any(m.delay for m in messages) else None
    groups = [m.group for m in messages] if any(m.group for m in messages) else None
    # NULL: no delay, no group (a fair queue stores the groups, the others ignore them)
    return {"queue": queue, "bodies": [m.body for m in messages], "delays": delays, "groups": groups}


def delete_received(cur: Cursor, queue: str, receipts: Sequence[str], *, wait_for_flush: bool) -> bool:
    """Delete the messages whose receipts are current, in the cursor's transaction.

    Args:
        cur: A cursor whose transaction the caller commits.
        queue: The queue of the messages.
        receipts: Their receipts; stale or malformed ones delete nothing.
        wait_for_flush: ``False`` sends the statement with :func:`without_flush_wait`.

    Returns:
        Whether the queue exists.
    """
    parsed = [p for p in map(_parse_receipt, receipts) if p is not None]
    params = {"queue": queue, "ids": [row_id for row_id, _ in parsed], "tokens": [t for _, t in parsed]}
    _DELETE_PREPARED.execute(cur, params, prefix="" if wait_for_flush else without_flush_wait(""))
    row = cur.fetchone()
    return row is not None and bool(row[0])


class PostgresQueue:
    """SQS-compatible queues in PostgreSQL (the embedded and on-premise default).

    Args:
        pool: Pool of the database holding the ``tornado_queues`` and
            ``tornado_messages`` tables (see ``apply_migrations``).
        fallback_poll: Seconds between re-polls of a long poll while
            ``LISTEN`` is unavailable.
    """

    max_send_batch = 500
    #: Bytes of bodies per multi-row INSERT (a bound on the statement's size, not a server limit).
    max_send_batch_bytes = 16 * 1_048_576
    #: Messages per receive (one statement; a worker asks for at most its free threads and prefetch).
    max_receive_batch = 100

    def __init__(self, pool: PostgresPool, *, fallback_poll: float = 0.05) -> None:
        self._pool = pool
        self._fallback_poll = fallback_poll
        self._listener = QueueListener(lambda: pool.new_connection(autocommit=True))
        self._fair: dict[str, bool] = {}  # queue -> hands messages out in turns across groups

    @contextlib.contextmanager
    def _cursor(self) -> Iterator[Cursor]:
        """A cursor in its own transaction.

        Statements wrapped in :func:`without_flush_wait` commit without waiting for the WAL
        flush. Only for changes whose loss in a server crash is harmless: a receive, a delete
        or a visibility change that is lost just lets the message appear again, and the job
        store's claim step (whose success record is always durable and written before the
        delete) acknowledges a finished job without running it.
        """
        try:
            with self._pool.connection() as conn, conn.cursor() as cur:
                yield cur
        except StoreUnavailable as exc:
            raise QueueUnavailable(f"PostgreSQL queue unavailable: {exc}") from exc

    def ensure_queue(self, spec: QueueSpec) -> None:
        """Create (or update) the queue and its dead-letter queue; idempotent."""
        with self._cursor() as cur:
            cur.execute(
                _ENSURE,
                {
                    "name": spec.name,
                    "dlq": spec.dead_letter_name,
                    "max": spec.max_receive_count,
                    "visibility": spec.visibility_timeout,
                    "fair": spec.fair,
                },
            )
        if spec.fair:
            self._fair[spec.name] = True

    def delete_queue(self, name: str) -> None:
        """Delete a queue and its messages; a missing queue is not an error."""
        with self._cursor() as cur:
            cur.execute("DELETE FROM tornado_messages WHERE queue = %s", (name,))
            cur.execute("DELETE FROM tornado_queues WHERE name = %s", (name,))

    def send_batch(self, queue: str, messages: Sequence[OutgoingMessage]) -> list[str | None]:
        """Store up to :attr:`max_send_batch` messages with one multi-row ``INSERT``."""
        if len(messages) > self.max_send_batch:
            raise ValueError(f"at most {self.max_send_batch} messages per batch, got {len(messages)}")
        if not messages:
            self._require(queue)
            return []
        with self._cursor() as cur:
            insert_messages(cur, queue, messages)
        return [None] * len(messages)

    def receive(
        self, queue: str, *, max_messages: int, wait_seconds: float, visibility_timeout: float
    ) -> list[ReceivedMessage]:
        """Long-poll for up to ``max_messages`` visible messages."""
        deadline = time.monotonic() + wait_seconds
        got: list[ReceivedMessage] = []
        while True:
            seen = self._listener.generation(queue) if wait_seconds > 0 else (0, 0)
            poll = self._poll(queue, max_messages - len(got), visibility_timeout)
            got.extend(poll.messages)
            if len(got) >= max_messages or (got and not poll.moved):
                return got
            if poll.moved:
                continue  # poison messages were set aside: look again at once
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return got
            self._listener.wait(queue, seen, self._pause(remaining, poll.next_visible_in))

    def _pause(self, remaining: float, next_visible_in: float | None) -> float:
        limit = IDLE_RECHECK if self._listener.healthy else self._fallback_poll
        if next_visible_in is not None:
            limit = min(limit, max(next_visible_in, 0.005))
        return min(remaining, limit)

    def _poll(self, queue: str, limit: int, visibility: float) -> _Poll:
        with self._cursor() as cur:
            fair = self._fair.get(queue)
            if fair is None:
                cur.execute("SELECT fair FROM tornado_queues WHERE name = %s", (queue,))
                row = cur.fetchone()
                fair = self._fair[queue] = bool(row and row[0])
            params = {"queue": queue, "limit": limit, "visibility": visibility}
            receive = _RECEIVE_FAIR_PREPARED if fair else _RECEIVE_PREPARED
            receive.execute(cur, params, prefix=without_flush_wait(""))
            rows: list[tuple[Any, ...]] = cur.fetchall()
        if not any(row[0] == "queue" for row in rows):
            raise missing_queue(queue)
        delivered = sorted((r for r in rows if r[0] == "msg"), key=lambda r: (r[6], r[1]))
        next_visible = next(r[7] for r in rows if r[0] == "queue")
        return _Poll(
            messages=[ReceivedMessage(r[2], r[3], f"{r[1]}:{r[4]}", r[5]) for r in delivered],
            moved=sum(1 for r in rows if r[0] == "moved"),
            next_visible_in=next_visible,
        )

    def delete(self, queue: str, receipts: Sequence[str]) -> None:
        """Delete messages whose receipt is current; stale receipts are ignored."""
        with self._cursor() as cur:
            if not delete_received(cur, queue, receipts, wait_for_flush=False):
                raise missing_queue(queue)

    def change_visibility(self, queue: str, receipt: str, timeout: float) -> None:
        """Hide a delivered message ``timeout`` more seconds from now (0 shows it).

        Raises:
            QueueUnavailable: The queue is unknown or the receipt is stale.
        """
        parsed = _parse_receipt(receipt)
        if parsed is not None:
            with self._cursor() as cur:
                cur.execute(
                    without_flush_wait(_CHANGE_VISIBILITY),
                    {"queue": queue, "id": parsed[0], "token": parsed[1], "timeout": timeout},
                )
                if cur.fetchone() is not None:
                    return
        self._require(queue)
        raise QueueUnavailable(f"receipt {receipt!r} is not valid on {queue}")

    def depth(self, queue: str) -> QueueDepth:
        """Visible, in-flight (received, hidden) and delayed (never received) counts."""
        with self._cursor() as cur:
            cur.execute(_DEPTH, {"queue": queue})
            row = cur.fetchone()
        if row is None or not row[0]:
            raise missing_queue(queue)
        return QueueDepth(visible=row[1], in_flight=row[2], delayed=row[3])

    def ping(self) -> None:
        """Raise ``QueueUnavailable`` unless PostgreSQL answers."""
        with self._cursor() as cur:
            cur.execute("SELECT 1")

    def close(self) -> None:
        """Stop the long-poll listener (the pool is closed by its owner)."""
        self._listener.close()

    def _require(self, queue: str) -> None:
        with self._cursor() as cur:
            cur.execute("SELECT 1 FROM tornado_queues WHERE name = %s", (queue,))
            if cur.fetchone() is None:
                raise missing_queue(queue)
