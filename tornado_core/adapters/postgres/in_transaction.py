"""Jobs on the PostgreSQL queue written with the caller's own connection, inside its transaction.

The same statements as :class:`~tornado_core.adapters.postgres.queue_and_jobs.PostgresQueueAndJobs`
(``insert_messages``, ``insert_queued``, ``hold_unique_key``), but never committed here: the
caller's ``COMMIT`` makes the job exist (and delivers the ``NOTIFY`` that wakes the workers), its
``ROLLBACK`` makes it vanish. Each call runs under a savepoint, so a refusal leaves the caller's
transaction usable.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg2
import psycopg2.errors
from psycopg2.extensions import connection as Connection
from psycopg2.extensions import cursor as Cursor

from tornado_core.adapters.postgres.jobs import hold_unique_key, insert_queued
from tornado_core.adapters.postgres.pool import UNREACHABLE
from tornado_core.adapters.postgres.queue import insert_messages
from tornado_core.errors import ConfigError, StoreUnavailable
from tornado_core.ports.jobs import NewJob
from tornado_core.ports.queue import OutgoingMessage
from tornado_core.ports.transactional import Holder

#: What a database that takes jobs in its transactions holds.
_TORNADO_TABLES = "Tornado queue: enqueueing in a transaction needs the database Tornado's queue lives in"


def caller_connection(connection: Any) -> Connection:
    """The caller's connection, if it is a psycopg2 connection inside a transaction.

    Raises:
        ConfigError: Another kind of object, a closed connection, or one in autocommit mode
            (where every statement commits at once, so nothing could be undone).
    """
    if not isinstance(connection, Connection):
        raise ConfigError(f"expected a psycopg2 connection, got {type(connection).__name__}")
    if connection.closed:
        raise ConfigError("the connection is closed")
    if connection.autocommit:
        raise ConfigError(
            "the connection is in autocommit mode: open a transaction (autocommit = False) so that "
            "the job exists only if it commits"
        )
    return connection


@contextlib.contextmanager
def savepoint(connection: Any, *, needs: str) -> Iterator[Cursor]:
    """A cursor on the caller's connection whose writes are undone if the block raises.

    Args:
        connection: The caller's psycopg2 connection (see :func:`caller_connection`).
        needs: What the block's tables are, for the error when they are missing.

    Raises:
        ConfigError: Not a usable connection, the caller's transaction already failed, or the
            database lacks the block's tables.
        StoreUnavailable: The connection broke.
    """
    conn = caller_connection(connection)
    try:
        with conn.cursor() as cur:
            cur.execute("SAVEPOINT tornado_write")
            try:
                yield cur
            except BaseException:
                _undo(cur)
                raise
            cur.execute("RELEASE SAVEPOINT tornado_write")
    except psycopg2.errors.InFailedSqlTransaction:
        raise ConfigError("the caller's transaction has already failed: roll it back first") from None
    except psycopg2.errors.UndefinedTable as exc:
        raise ConfigError(f"this database has no {needs} ({_first_line(exc)})") from None
    except UNREACHABLE as exc:
        raise StoreUnavailable(f"the caller's PostgreSQL connection failed: {_first_line(exc)}") from exc


def _undo(cur: Cursor) -> None:
    # Released after the rollback, so that an enclosing savepoint of the same name is the one an outer
    # rollback reaches. A broken connection: the caller's transaction is lost anyway.
    with contextlib.suppress(psycopg2.Error):
        cur.execute("ROLLBACK TO SAVEPOINT tornado_write; RELEASE SAVEPOINT tornado_write")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class PostgresCallerTransaction:
    """The PostgreSQL queue and job store written in the caller's transaction (``CallerTransactionPort``)."""

    def check(self, connection: Any) -> None:
        """Raise ``ConfigError`` unless ``connection`` can take the job in its transaction."""
        caller_connection(connection)

    @contextlib.contextmanager
    def atomic(self, connection: Any) -> Iterator[None]:
        """A block whose writes are all undone if it raises (a savepoint around them)."""
        with savepoint(connection, needs=_TORNADO_TABLES):
            yield

    def send_recorded(
        self, connection: Any, queue: str, messages: Sequence[OutgoingMessage], jobs: Sequence[NewJob]
    ) -> None:
        """Store the messages and their ``queued`` rows; the caller's commit makes them exist.

        Raises:
            QueueUnavailable: The queue does not exist (nothing was written).
            ConfigError: The connection's database is not Tornado's (no ``tornado_messages``).
        """
        if len(messages) != len(jobs):
            raise ValueError(f"{len(messages)} messages but {len(jobs)} jobs")
        if not messages:
            return
        with savepoint(connection, needs=_TORNADO_TABLES) as cur:
            insert_messages(cur, queue, messages)
            insert_queued(cur, jobs)

    def hold_unique(
        self, connection: Any, task: str, tenant: str, key: str, job_id: str, *, window: float
    ) -> Holder | None:
        """Take the key for ``job_id`` until the caller's transaction ends; ``None`` if it did."""
        with savepoint(connection, needs=_TORNADO_TABLES) as cur:
            holder = hold_unique_key(cur, task, tenant, key, job_id, window=window)
            if holder == job_id:
                return None
            cur.execute("SELECT version, status FROM tornado_jobs WHERE job_id = %s", (holder,))
            row = cur.fetchone()
        return Holder(job_id=holder, version=row[0] if row else None, status=row[1] if row else None)
