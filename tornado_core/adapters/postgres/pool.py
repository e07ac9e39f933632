"""A thread-safe psycopg2 connection pool implementing :class:`DatabasePort`."""

from __future__ import annotations

import contextlib
import logging
import select
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg2
import psycopg2.extensions
from psycopg2.extensions import connection as Connection

from tornado_core.adapters.postgres.prepared import PreparingConnection
from tornado_core.errors import StoreUnavailable

log = logging.getLogger(__name__)

#: psycopg2 errors that mean "the server cannot be reached or dropped us".
UNREACHABLE = (psycopg2.OperationalError, psycopg2.InterfaceError)
#: Run first in a transaction whose loss in a server crash is harmless: its commit
#: does not wait for the WAL flush (it is still atomic, and visible at once).
ASYNC_COMMIT = "SET LOCAL synchronous_commit TO OFF"


def without_flush_wait(sql: str) -> str:
    """``sql`` preceded by :data:`ASYNC_COMMIT`, sent together (one round trip, not two)."""
    return f"{ASYNC_COMMIT};\n{sql}"


#: libpq settings every connection gets unless its DSN names them: give up connecting after 5 s,
#: and notice a server that vanished (no answer to keepalives, or unacknowledged data) within
#: about 20 s instead of the kernel's two hours. A server that is up but stalled still answers
#: TCP: the API's request deadline covers that case.
_LINK_CHECKS: dict[str, Any] = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 3,
    "keepalives_count": 3,
    "tcp_user_timeout": 20_000,
}


def describe_dsn(dsn: str) -> str:
    """``host:port/dbname`` of a DSN, without credentials, for error messages."""
    try:
        parts = psycopg2.extensions.parse_dsn(dsn)
    except psycopg2.ProgrammingError:
        return "<invalid dsn>"
    host = parts.get("host", "localhost")
    port = parts.get("port", "5432")
    return f"{host}:{port}/{parts.get('dbname', '')}"


def connect(dsn: str, *, autocommit: bool = False, prepare_statements: bool = True) -> Connection:
    """Open one unpooled connection.

    Args:
        dsn: libpq connection string or URL.
        autocommit: Put the connection in autocommit mode.
        prepare_statements: Let :class:`~tornado_core.adapters.postgres.prepared.Prepared`
            statements be prepared on it (else they are sent whole every time).

    Raises:
        StoreUnavailable: The server cannot be reached.
    """
    extra = {name: value for name, value in _LINK_CHECKS.items() if name not in dsn}
    try:
        conn: Connection = psycopg2.connect(dsn, connection_factory=PreparingConnection, **extra)
    except UNREACHABLE as exc:
        raise StoreUnavailable(
            f"PostgreSQL at {describe_dsn(dsn)} is unreachable: {_first_line(exc)}"
        ) from exc
    conn.autocommit = autocommit
    if isinstance(conn, PreparingConnection):
        conn.prepares = prepare_statements
    return conn


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def is_usable(conn: Connection) -> bool:
    """Whether an idle connection still talks to the server.

    An idle socket should have nothing to read; if it does (the server said
    goodbye, e.g. after ``pg_terminate_backend`` or a restart) a ``SELECT 1``
    tells whether the connection still works. Cheap on the happy path.
    """
    if conn.closed:
        return False
    try:
        readable, _, _ = select.select([conn], [], [], 0)
        if not readable:
            return True
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
        conn.rollback()
        return True
    except (psycopg2.Error, OSError, ValueError):
        return False


def close_quietly(conn: Connection) -> None:
    """Close a connection, ignoring errors (it may be broken already)."""
    with contextlib.suppress(psycopg2.Error):
        conn.close()


class PostgresPool:
    """A pool of psycopg2 connections; each borrow is one transaction.

    Connections are opened on demand up to ``max_size``; ``min_size`` of them
    are opened up front when the server answers (a server that is down at
    start-up is not an error until the pool is used). Broken connections are
    discarded instead of being returned, so the pool heals after a PostgreSQL
    restart.

    Args:
        dsn: libpq connection string or URL.
        min_size: Connections opened at construction (best effort).
        max_size: Most connections open at once; borrowers wait beyond that.
        acquire_timeout: Seconds a borrower waits for a free connection.
        prepare_statements: Prepare hot statements once per connection (off behind a pooler in
            transaction mode).
    """

    def __init__(
        self,
        dsn: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        acquire_timeout: float = 30.0,
        prepare_statements: bool = True,
    ) -> None:
        if not 0 <= min_size <= max_size or max_size < 1:
            raise ValueError(f"need 0 <= min_size <= max_size and max_size >= 1, got {min_size}, {max_size}")
        self.dsn = dsn
        self.max_size = max_size
        self._prepare_statements = prepare_statements
        self._acquire_timeout = acquire_timeout
        self._idle: list[Connection] = []
        self._open = 0
        self._closed = False
        self._cond = threading.Condition()
        self._warm_up(min_size)

    def _warm_up(self, count: int) -> None:
        try:
            conns = [connect(self.dsn, prepare_statements=self._prepare_statements) for _ in range(count)]
        except StoreUnavailable as exc:
            log.warning("postgres pool: no connection at start-up (%s); will retry on use", exc)
            return
        with self._cond:
            self._idle.extend(conns)
            self._open += len(conns)

    @contextlib.contextmanager
    def connection(self, *, one_message: bool = False) -> Iterator[Connection]:
        """Borrow a connection for one transaction.

        Commits when the block ends normally, rolls back otherwise, and
        returns the connection to the pool (or discards it if broken).

        Args:
            one_message: The block sends its whole transaction as one message of statements
                (:func:`~tornado_core.adapters.postgres.prepared.execute_in_one_message`), which
                PostgreSQL runs as one transaction: the connection is in autocommit mode for the
                block, so no ``BEGIN`` and ``COMMIT`` round trips go with it.

        Raises:
            StoreUnavailable: The server is unreachable, the connection broke
                (any psycopg2 ``OperationalError`` or ``InterfaceError``), or no
                connection was free within ``acquire_timeout``.
        """
        conn = self._acquire()
        try:
            if one_message:
                conn.autocommit = True
            yield conn
            conn.commit()
        except UNREACHABLE as exc:
            self._give_back(conn, failed=True)
            raise StoreUnavailable(
                f"PostgreSQL at {describe_dsn(self.dsn)} failed: {_first_line(exc)}"
            ) from exc
        except BaseException:
            self._give_back(conn, failed=True)
            raise
        self._give_back(conn, failed=False)

    def new_connection(self, *, autocommit: bool = False) -> Connection:
        """Open a connection outside the pool (e.g. for ``LISTEN``); the caller closes it."""
        return connect(self.dsn, autocommit=autocommit, prepare_statements=self._prepare_statements)

    def close(self) -> None:
        """Close idle connections now and borrowed ones when they come back."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._open -= len(idle)
            self._cond.notify_all()
        for conn in idle:
            close_quietly(conn)

    def _acquire(self) -> Connection:
        deadline = time.monotonic() + self._acquire_timeout
        while True:
            conn = self._take_idle_or_slot(deadline)
            if conn is None:
                return self._open_new()
            if is_usable(conn):
                return conn
            self._discard(conn)

    def _take_idle_or_slot(self, deadline: float) -> Connection | None:
        """An idle connection, or ``None`` after reserving a slot for a new one."""
        with self._cond:
            while True:
                if self._closed:
                    raise StoreUnavailable("the PostgreSQL pool is closed")
                if self._idle:
                    return self._idle.pop()
                if self._open < self.max_size:
                    self._open += 1
                    return None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise StoreUnavailable(
                        f"all {self.max_size} PostgreSQL connections stayed busy "
                        f"for {self._acquire_timeout:g} s"
                    )
                self._cond.wait(remaining)

    def _open_new(self) -> Connection:
        try:
            return connect(self.dsn, prepare_statements=self._prepare_statements)
        except BaseException:
            with self._cond:
                self._open -= 1
                self._cond.notify()
            raise

    def _give_back(self, conn: Connection, *, failed: bool) -> None:
        if not conn.closed:
            try:
                if failed:
                    conn.rollback()
                if conn.autocommit:  # the next borrower's block is one transaction again
                    conn.autocommit = False
            except psycopg2.Error:
                close_quietly(conn)
        if conn.closed:
            self._discard(conn)
            return
        with self._cond:
            if not self._closed:
                self._idle.append(conn)
                self._cond.notify()
                return
            self._open -= 1
        close_quietly(conn)

    def _discard(self, conn: Connection) -> None:
        close_quietly(conn)
        with self._cond:
            self._open -= 1
            self._cond.notify()
