"""Group commit of finished jobs: the jobs that finish together share one durable transaction.

Each job thread calls :meth:`GroupCommit.record` and returns once its record is durable, as
before; only the number of commits changes. No timer and no waiting for company: the first
thread to arrive writes what is pending at once, and the threads that finish while that commit
is under way go together in the next one (handed over to one of them). With one job at a time
it is one commit per job; under load, one per batch.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from tornado_core.ports.jobs import JobStorePort
from tornado_core.ports.queue_and_jobs import Completion, QueueAndJobsPort
from tornado_core.worker.acks import AckSink
from tornado_core.worker.background import BackgroundBatcher

T = TypeVar("T")

logger = logging.getLogger("tornado.worker")

#: Most records in one transaction.
MAX_BATCH = 128


@dataclass
class _Entry(Generic[T]):
    item: T
    woken: threading.Event = field(default_factory=threading.Event)
    lead: bool = False
    done: bool = False
    error: BaseException | None = None


def completion_writer(
    jobs: JobStorePort, queue_and_jobs: QueueAndJobsPort | None, acks: AckSink
) -> Callable[[list[Completion]], None]:
    """How a batch of finished jobs is made durable and acknowledged.

    Args:
        jobs: The job store.
        queue_and_jobs: Records and deletes in one transaction where the backend can (PostgreSQL).
        acks: Otherwise, where the messages go once their successes are recorded.

    Returns:
        A function that returns once every success in the batch is durable.
    """
    if queue_and_jobs is not None:
        return queue_and_jobs.complete

    def record_then_acknowledge(batch: list[Completion]) -> None:
        jobs.record_successes([c.success for c in batch])
        for completion in batch:  # only once the outcome is durable
            acks.ack(completion.queue, completion.receipt)

    return record_then_acknowledge


class GroupCommit(Generic[T]):
    """Writes records durably, batching the ones that arrive together.

    Args:
        write: Writes one batch durably (raises if it could not; then none of it counts).
        max_batch: Most records per transaction.
    """

    def __init__(self, write: Callable[[list[T]], None], *, max_batch: int = MAX_BATCH) -> None:
        self._write = write
        self._max = max(1, max_batch)
        self._lock = threading.Lock()
        self._pending: list[_Entry[T]] = []
        self._flushing = False

    @property
    def pending(self) -> int:
        """Records waiting for the next commit (not counting one under way)."""
        with self._lock:
            return len(self._pending)

    def record(self, item: T) -> None:
        """Write ``item`` with the others that arrive meanwhile; returns once it is durable.

        Raises:
            StoreUnavailable: The store could not write it (nothing to acknowledge then).
        """
        entry = _Entry(item)
        with self._lock:
            self._pending.append(entry)
            if not self._flushing:
                self._flushing = entry.lead = True
        while not entry.done:
            if entry.lead:
                entry.lead = False
                self._flush_next()
            else:
                entry.woken.wait()
                entry.woken.clear()
        if entry.error is not None:
            raise entry.error

    def _flush_next(self) -> None:
        """Write the oldest pending records (the leader's own among them), then hand over."""
        with self._lock:
            batch, self._pending = self._pending[: self._max], self._pending[self._max :]
        error: BaseException | None = None
        try:
            self._write([entry.item for entry in batch])
        except Exception as exc:
            error = exc
        for entry in batch:
            entry.error, entry.done = error, True
            entry.woken.set()
        with self._lock:
            if self._pending:  # those who finished meanwhile: the first of them leads the next commit
                successor = self._pending[0]
                successor.lead = True
                successor.woken.set()
            else:
                self._flushing = False


class BackgroundCompleter(BackgroundBatcher):
    """Makes finished jobs durable in batches from a thread of its own, so job threads go on.

    A job thread hands its :class:`Completion` over with :meth:`submit` and takes the next job;
    the completer writes whatever is pending in one transaction, then again with what arrived
    meanwhile (no timer: one commit at a time, each as large as the load makes it), and tells
    :attr:`on_durable` how each batch went. Until then the worker still holds the message (its
    heartbeat keeps it hidden), so nothing is acknowledged or redelivered early. ``submit``
    blocks while ``max_pending`` completions wait (a slow store slows the job threads down).
    The thread runs between :meth:`start` and :meth:`close`.

    Args:
        write: Writes one batch durably (see :func:`completion_writer`); raises if it could not.
        on_durable: Called from the completer's thread with each batch and the error (``None``
            when the batch is durable).
        max_batch: Most completions per transaction.
        max_pending: Most completions waiting before ``submit`` blocks.
    """

    def __init__(
        self,
        write: Callable[[list[Completion]], None],
        on_durable: Callable[[list[Completion], BaseException | None], None],
        *,
        max_batch: int = MAX_BATCH,
        max_pending: int = 4 * MAX_BATCH,
    ) -> None:
        self._write = write
        self._on_durable = on_durable
        self._max_batch = max(1, max_batch)
        self._max_pending = max(self._max_batch, max_pending)
        self._pending: list[Completion] = []
        super().__init__(thread_name="tornado-completer", close_timeout=None)

    def submit(self, completion: Completion) -> None:
        """Queue a finished job for the next commit."""
        with self._cond:
            while len(self._pending) >= self._max_pending and not self._closed:
                self._cond.wait()
            self._pending.append(completion)
            self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending:  # closed and nothing left
                    return
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                self._cond.notify_all()  # room for blocked submitters
            error: BaseException | None = None
            try:
                self._write(batch)
            except Exception as exc:  # reported per batch: the worker lets those messages reappear
                error = exc
            try:
                self._on_durable(batch, error)
            except Exception:  # the completer must outlive a faulty report, or job threads would block
                logger.exception("reporting %d finished job(s) failed", len(batch))
