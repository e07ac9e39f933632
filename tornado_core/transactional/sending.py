"""Queueing prepared jobs from a plain (not asynchronous) producer: the outbox relay.

The same ports as the API's enqueue path: on PostgreSQL the messages and their ``queued`` rows
in one commit (``QueueAndJobsPort``), elsewhere the messages then the rows; the messages in
chunks the queue takes in one call (:func:`~tornado_core.producer.batching.chunks_of`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from tornado_core.errors import QueueUnavailable
from tornado_core.ports.queue import OutgoingMessage
from tornado_core.producer.batching import chunks_of
from tornado_core.producer.submission import PreparedJob
from tornado_core.services import Services


@dataclass(frozen=True)
class JobToSend:
    """A prepared job with what its send needs besides the envelope."""

    job: PreparedJob
    idempotency_key: str | None = None
    delay: float = 0.0


class JobSender:
    """Sends prepared jobs and records their ``queued`` rows, all or raising.

    Args:
        services: The process's services (queue, job store, and both in one where they share a database).
    """

    def __init__(self, services: Services) -> None:
        self._queue = services.queue
        self._jobs = services.jobs
        self._together = services.queue_and_jobs

    def send(self, jobs: Sequence[JobToSend]) -> None:
        """Queue every job (a job already queued with the same id is queued again: its id collapses it).

        Raises:
            QueueUnavailable: A message was refused (others may be queued: send them all again).
            StoreUnavailable: The job store cannot be reached.
        """
        groups: dict[tuple[str, float], list[JobToSend]] = defaultdict(list)
        for item in jobs:
            groups[(item.job.queue, item.delay)].append(item)
        limits = self._together if self._together is not None else self._queue
        for (queue, delay), group in groups.items():
            for chunk in chunks_of(group, _body, max(1, limits.max_send_batch), limits.max_send_batch_bytes):
                self._send_chunk(queue, delay, chunk)

    def _send_chunk(self, queue: str, delay: float, chunk: Sequence[JobToSend]) -> None:
        messages = [OutgoingMessage(item.job.body, delay) for item in chunk]
        new_jobs = [item.job.as_new_job(item.idempotency_key) for item in chunk]
        if self._together is not None:
            errors = self._together.send_recorded(queue, messages, new_jobs)
        else:
            errors = self._queue.send_batch(queue, messages)
        refused = next((error for error in errors if error is not None), None)
        if refused is not None:
            raise QueueUnavailable(f"the queue {queue} refused a message: {refused}")
        if self._together is None:
            self._jobs.record_queued(new_jobs)


def _body(item: JobToSend) -> str:
    return item.job.body
