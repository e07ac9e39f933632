"""Operator tools for dead-letter queues: look without consuming, redrive, discard."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tornado_core.message import Envelope
from tornado_core.ports.jobs import JobStatus, JobStorePort
from tornado_core.ports.queue import OutgoingMessage, QueuePort, ReceivedMessage

#: Seconds a peeked message stays hidden while a batch is being read.
_PEEK_HIDE = 30.0


@dataclass(frozen=True, kw_only=True)
class DeadLetter:
    """A message sitting in a dead-letter queue."""

    message_id: str
    job_id: str | None
    task: str | None
    tenant: str | None
    body: str

    def to_json(self) -> dict[str, Any]:
        """A row for listings."""
        return {
            "message_id": self.message_id,
            "job_id": self.job_id,
            "task": self.task,
            "tenant": self.tenant,
        }


class DeadLetterQueue:
    """One dead-letter queue and the work queue it belongs to.

    Args:
        queue: The queue port.
        jobs: The job store (statuses follow the messages).
        dead_letter_name: The DLQ.
        source_name: The work queue redriven messages go back to.
    """

    def __init__(
        self, queue: QueuePort, jobs: JobStorePort, *, dead_letter_name: str, source_name: str
    ) -> None:
        self._queue = queue
        self._jobs = jobs
        self._dlq = dead_letter_name
        self._source = source_name

    def peek(self, limit: int = 100) -> list[DeadLetter]:
        """Up to ``limit`` dead letters, left in the queue."""
        seen: list[DeadLetter] = []
        receipts: list[str] = []
        for message in self._take(limit):
            seen.append(_describe(message))
            receipts.append(message.receipt)
        for receipt in receipts:
            self._queue.change_visibility(self._dlq, receipt, 0)
        return seen

    def redrive(self, limit: int | None = None) -> int:
        """Move dead letters back to the work queue; returns how many moved."""
        moved = 0
        for batch in self._batches(limit):
            errors = self._queue.send_batch(self._source, [OutgoingMessage(m.body) for m in batch])
            sent = [m for m, error in zip(batch, errors, strict=True) if error is None]
            self._queue.delete(self._dlq, [m.receipt for m in sent])
            self._jobs.mark([j for j in (_describe(m).job_id for m in sent) if j], status=JobStatus.QUEUED)
            moved += len(sent)
        return moved

    def discard(self, limit: int | None = None) -> int:
        """Delete dead letters for good; their jobs become ``failed``."""
        dropped = 0
        for batch in self._batches(limit):
            self._queue.delete(self._dlq, [m.receipt for m in batch])
            self._jobs.mark([j for j in (_describe(m).job_id for m in batch) if j], status=JobStatus.FAILED)
            dropped += len(batch)
        return dropped

    def _batches(self, limit: int | None) -> Iterator[list[ReceivedMessage]]:
        remaining = limit
        while remaining is None or remaining > 0:
            want = 10 if remaining is None else min(10, remaining)
            batch = self._queue.receive(
                self._dlq, max_messages=want, wait_seconds=0, visibility_timeout=_PEEK_HIDE
            )
            if not batch:
                return
            yield batch
            if remaining is not None:
                remaining -= len(batch)

    def _take(self, limit: int) -> Iterator[ReceivedMessage]:
        for batch in self._batches(limit):
            yield from batch


def _describe(message: ReceivedMessage) -> DeadLetter:
    try:
        envelope: Envelope | None = Envelope.from_json(message.body)
    except Exception:  # an unreadable message is still listed, as raw text
        envelope = None
    if envelope is None:
        try:
            raw = json.loads(message.body)
        except ValueError:
            raw = {}
        job_id = raw.get("job_id") if isinstance(raw, dict) else None
        return DeadLetter(
            message_id=message.message_id, job_id=job_id, task=None, tenant=None, body=message.body
        )
    return DeadLetter(
        message_id=message.message_id,
        job_id=envelope.job_id,
        task=envelope.task,
        tenant=envelope.tenant,
        body=message.body,
    )
