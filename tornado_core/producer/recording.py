"""Write-behind of accepted jobs into the job store, off the request's critical path.

The API answers 202 as soon as the queue has the message; the ``queued`` row is
written afterwards, in batches, by :class:`QueuedRecorder`. Losing such a row is
harmless: the job id itself tells the API the job is the caller's (see
:meth:`tornado_core.job_ids.JobIds.belongs_to`), and the worker creates the row
when it claims the job. So when the store is down the batch is dropped with a
warning, and when the buffer is full new rows are dropped the same way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor

from tornado_core.errors import StoreUnavailable
from tornado_core.ports.jobs import JobStorePort, NewJob

_log = logging.getLogger(__name__)


class QueuedRecorder:
    """Buffers :class:`NewJob` rows and records them with ``jobs.record_queued`` in the background.

    A row added while no write is in flight is written at once; rows added during
    a write go in the next one (at most ``batch_size`` per call).

    Args:
        jobs: The job store.
        executor: Where the blocking store calls run.
        max_buffer: Rows kept waiting at most; beyond it new rows are dropped.
        batch_size: Rows per ``record_queued`` call.
        warn_every: Seconds between two warnings about dropped rows.
        clock: Monotonic clock (tests).

    Must be used from one event loop.
    """

    def __init__(
        self,
        jobs: JobStorePort,
        executor: Executor,
        *,
        max_buffer: int = 50_000,
        batch_size: int = 500,
        warn_every: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._jobs = jobs
        self._executor = executor
        self._max_buffer = max_buffer
        self._batch_size = max(1, batch_size)
        self._warn_every = warn_every
        self._clock = clock
        self._buffer: deque[NewJob] = deque()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._dropped = 0
        self._unreported = 0
        self._last_warning = -float("inf")

    @property
    def pending(self) -> int:
        """Rows waiting to be written (including a batch being written)."""
        return len(self._buffer)

    @property
    def dropped(self) -> int:
        """Rows dropped so far (buffer full, store down, or added after close)."""
        return self._dropped

    def add(self, job: NewJob) -> None:
        """Schedule ``job`` to be recorded as queued; never blocks, never raises."""
        if self._closed or len(self._buffer) >= self._max_buffer:
            self._drop(1, "recorder closed" if self._closed else "buffer full")
            return
        self._buffer.append(job)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def close(self) -> None:
        """Write everything still buffered, then refuse new rows."""
        self._closed = True
        while self._task is not None:
            await asyncio.shield(self._task)

    async def _drain(self) -> None:
        try:
            while self._buffer:
                count = min(self._batch_size, len(self._buffer))
                batch = [self._buffer[i] for i in range(count)]
                await self._write(batch)
                for _ in range(count):
                    self._buffer.popleft()
        finally:
            self._task = None

    async def _write(self, batch: list[NewJob]) -> None:
        """Record ``batch``; a row the store refuses costs only itself, never its neighbours."""
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._jobs.record_queued, batch)
        except StoreUnavailable as exc:
            self._drop(len(batch), f"job store unavailable: {exc}")
        except Exception:
            if len(batch) > 1:  # find the refused row(s) by halves: log2(batch) extra calls per bad row
                middle = len(batch) // 2
                await self._write(batch[:middle])
                await self._write(batch[middle:])
                return
            _log.exception("the job store refused the queued row of job %s; dropped", batch[0].job_id)
            self._dropped += 1

    def _drop(self, count: int, reason: str) -> None:
        self._dropped += count
        self._unreported += count
        now = self._clock()
        if now - self._last_warning >= self._warn_every:
            _log.warning(
                "dropped %d queued-job rows (%s); their ids still answer 'queued'",
                self._unreported,
                reason,
            )
            self._unreported = 0
            self._last_warning = now
