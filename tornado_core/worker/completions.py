"""Group commit of success records: the jobs that finish together share one durable transaction.

Each job thread calls :meth:`SuccessRecorder.record` and returns once its record is durable, as
before; only the number of commits changes. No timer and no waiting for company: the first
thread to arrive writes what is pending at once, and the threads that finish while that commit
is under way go together in the next one (handed over to one of them). With one job at a time
it is one commit per job; under load, one per batch.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from tornado_core.ports.jobs import JobStorePort, Success

#: Most records in one transaction.
MAX_BATCH = 128


@dataclass
class _Entry:
    success: Success
    woken: threading.Event = field(default_factory=threading.Event)
    lead: bool = False
    done: bool = False
    error: BaseException | None = None


class SuccessRecorder:
    """Records successes durably, batching the ones that arrive together.

    Args:
        jobs: The job store (``record_successes``).
        max_batch: Most records per transaction.
    """

    def __init__(self, jobs: JobStorePort, *, max_batch: int = MAX_BATCH) -> None:
        self._jobs = jobs
        self._max = max(1, max_batch)
        self._lock = threading.Lock()
        self._pending: list[_Entry] = []
        self._flushing = False

    @property
    def pending(self) -> int:
        """Records waiting for the next commit (not counting one under way)."""
        with self._lock:
            return len(self._pending)

    def record(self, success: Success) -> None:
        """Mark the job succeeded; returns once that is durable.

        Raises:
            StoreUnavailable: The job store could not record it (nothing to acknowledge then).
        """
        entry = _Entry(success)
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
            self._jobs.record_successes([entry.success for entry in batch])
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
