"""The queue and the job store written in one transaction, where both live in one database.

On the PostgreSQL backend a job's message and its ``queued`` row are stored together, and a
finished job's success and its message's deletion are committed together. Elsewhere (SQS and
PostgreSQL) the API stores the message first and records the row after, and the worker records
the success first and deletes the message after.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from tornado_core.ports.jobs import NewJob, Success
from tornado_core.ports.queue import OutgoingMessage


@dataclass(frozen=True, kw_only=True)
class Completion:
    """A job that succeeded and the delivered message that carried it.

    Attributes:
        success: What to record in the job store.
        queue: The queue the message came from.
        receipt: The delivery's receipt (a stale one deletes nothing).
    """

    success: Success
    queue: str
    receipt: str


class QueueAndJobsPort(Protocol):
    """Atomic, durable writes to both the queue and the job store.

    Every method raises ``StoreUnavailable`` when the database cannot be reached (then nothing
    was written).
    """

    #: Most messages one :meth:`send_recorded` call accepts.
    max_send_batch: int
    #: Largest sum of the bodies' UTF-8 bytes one :meth:`send_recorded` call accepts.
    max_send_batch_bytes: int

    def send_recorded(
        self, queue: str, messages: Sequence[OutgoingMessage], jobs: Sequence[NewJob]
    ) -> list[str | None]:
        """Store the messages and their jobs' ``queued`` rows in one durable transaction.

        Args:
            queue: The queue.
            messages: The messages, at most :attr:`max_send_batch`.
            jobs: One job per message, in the same order (ids already known are left as they are).

        Returns:
            For each message, ``None`` if it was stored, else an error text.
        """

    def complete(self, completions: Sequence[Completion]) -> None:
        """Mark the jobs succeeded and delete their messages in one durable transaction."""
