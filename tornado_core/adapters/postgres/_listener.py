"""Wakes long-polling receivers when PostgreSQL ``NOTIFY``s that a queue changed."""

from __future__ import annotations

import logging
import select
import threading
from collections.abc import Callable

import psycopg2
from psycopg2.extensions import connection as Connection

from tornado_core.adapters.postgres.pool import close_quietly
from tornado_core.errors import BackendError

log = logging.getLogger(__name__)

#: The channel senders notify, with the queue name as payload.
CHANNEL = "tornado_queue"


class QueueListener:
    """One background thread ``LISTEN``ing on :data:`CHANNEL` for a process.

    Receivers read :meth:`generation` of their queue before polling and then
    :meth:`wait` for it to change; a notification arriving in between is not
    lost. While the listening connection is down, :meth:`healthy` is false and
    receivers fall back to short sleeps.

    Args:
        connect: Opens an autocommit connection.
        reconnect_delay: Seconds between reconnection attempts.
        channel: The channel to listen on (route caches listen on another one).
        on_notify: Also called, from the listening thread, with each batch of payloads, and with
            ``None`` after every (re)connection (notifications may have been missed meanwhile).
    """

    def __init__(
        self,
        connect: Callable[[], Connection],
        *,
        reconnect_delay: float = 0.5,
        channel: str = CHANNEL,
        on_notify: Callable[[frozenset[str] | None], None] | None = None,
    ) -> None:
        self._connect = connect
        self._on_notify = on_notify
        self._channel = channel
        self._reconnect_delay = reconnect_delay
        self._cond = threading.Condition()
        self._generations: dict[str, int] = {}
        self._epoch = 0  # bumped on (re)connect: notifications may have been missed
        self._healthy = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def healthy(self) -> bool:
        """Whether notifications are being received right now."""
        return self._healthy

    def generation(self, queue: str) -> tuple[int, int]:
        """A token that changes whenever ``queue`` is notified (starts the thread)."""
        self.start()
        with self._cond:
            return self._epoch, self._generations.get(queue, 0)

    def wait(self, queue: str, seen: tuple[int, int], timeout: float) -> None:
        """Block until ``queue``'s token differs from ``seen`` or ``timeout`` passes."""
        with self._cond:
            self._cond.wait_for(
                lambda: self._stop.is_set() or (self._epoch, self._generations.get(queue, 0)) != seen,
                timeout,
            )

    def close(self) -> None:
        """Stop the thread and close its connection."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def start(self) -> None:
        """Start listening (idempotent)."""
        with self._cond:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="tornado-pg-listener", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            conn = self._listen()
            if conn is None:
                self._stop.wait(self._reconnect_delay)
                continue
            try:
                self._pump(conn)
            except (psycopg2.Error, OSError, ValueError) as exc:
                log.warning("queue listener lost its connection: %s", exc)
            finally:
                with self._cond:  # waiters wake up and fall back to polling: nothing is notified now
                    self._healthy = False
                    self._epoch += 1
                    self._cond.notify_all()
                close_quietly(conn)

    def _listen(self) -> Connection | None:
        try:
            conn = self._connect()
        except BackendError:
            return None
        try:
            with conn.cursor() as cur:
                cur.execute(f"LISTEN {self._channel}")
        except psycopg2.Error:
            close_quietly(conn)
            return None
        with self._cond:
            self._epoch += 1
            self._healthy = True
            self._cond.notify_all()
        self._tell(None)
        return conn

    def _pump(self, conn: Connection) -> None:
        while not self._stop.is_set():
            readable, _, _ = select.select([conn], [], [], 0.5)
            if not readable:
                continue
            conn.poll()
            if not conn.notifies:
                continue
            queues = {n.payload for n in conn.notifies}
            conn.notifies.clear()
            with self._cond:
                for queue in queues:
                    self._generations[queue] = self._generations.get(queue, 0) + 1
                self._cond.notify_all()
            self._tell(frozenset(queues))

    def _tell(self, payloads: frozenset[str] | None) -> None:
        if self._on_notify is None:
            return
        try:
            self._on_notify(payloads)
        except Exception:  # a listener's callback must never stop the listening
            log.exception("a notification callback failed")
