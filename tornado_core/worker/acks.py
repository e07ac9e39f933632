"""Acknowledgements: deleting finished messages, at once or ten at a time.

The job runner acknowledges through an :class:`AckSink`. :class:`ImmediateAcks`
deletes each message at once; the worker loop uses :class:`Acknowledger`, which
deletes in batches from a background thread that runs between :meth:`Acknowledger.start`
and :meth:`Acknowledger.close` (constructing one starts nothing).

A job's outcome is already recorded in the job store when its message is handed
here, so a crash before the flush only means a redelivery that the claim step
acknowledges without running the job again.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Protocol

from tornado_core.errors import BackendError
from tornado_core.ports.queue import QueuePort
from tornado_core.worker.background import BackgroundBatcher

logger = logging.getLogger("tornado.worker")

#: Seconds a receipt may wait for company before its batch is deleted anyway.
FLUSH_AFTER = 0.02
#: Receipts per delete call (SQS's DeleteMessageBatch takes ten).
BATCH = 10


class AckSink(Protocol):
    """Where the job runner hands the messages it has finished with."""

    def ack(self, queue: str, receipt: str) -> None:
        """Delete this delivered message from ``queue`` (now or soon)."""


class ImmediateAcks:
    """Deletes each acknowledged message at once, one delete call per message.

    Args:
        queue: The queue port.
    """

    def __init__(self, queue: QueuePort) -> None:
        self._queue = queue

    def ack(self, queue: str, receipt: str) -> None:
        """Delete this message now."""
        self._queue.delete(queue, [receipt])


class Acknowledger(BackgroundBatcher):
    """Collects receipts and deletes them in batches from a background thread.

    The thread runs from :meth:`start` to :meth:`close`; receipts handed over
    before :meth:`start` wait for it.

    Args:
        queue: The queue port.
        flush_after: Longest wait of a receipt before its batch is sent.
    """

    def __init__(self, queue: QueuePort, *, flush_after: float = FLUSH_AFTER) -> None:
        self._queue = queue
        self._flush_after = flush_after
        self._pending: dict[str, list[str]] = defaultdict(list)
        super().__init__(thread_name="tornado-acks", close_timeout=30)

    def ack(self, queue: str, receipt: str) -> None:
        """Delete this message soon (within ``flush_after`` seconds)."""
        with self._cond:
            first = not any(self._pending.values())
            self._pending[queue].append(receipt)
            if first or len(self._pending[queue]) >= BATCH:
                self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not any(self._pending.values()):
                    self._cond.wait()  # idle: sleep until the first receipt
                if not self._closed and not self._full():
                    self._cond.wait(timeout=self._flush_after)  # give it company
                batches = {q: r for q, r in self._pending.items() if r}
                self._pending.clear()
                closing = self._closed
            self._delete(batches)
            if closing:
                return

    def _full(self) -> bool:
        return any(len(receipts) >= BATCH for receipts in self._pending.values())

    def _delete(self, batches: dict[str, list[str]]) -> None:
        for queue, receipts in batches.items():
            for start in range(0, len(receipts), BATCH):
                chunk = receipts[start : start + BATCH]
                try:
                    self._queue.delete(queue, chunk)
                except BackendError as exc:  # redelivered later and acknowledged by the claim step
                    logger.warning("could not delete %d finished message(s): %s", len(chunk), exc)
