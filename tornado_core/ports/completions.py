"""The completion port: a finished job's success and its message's deletion, in one transaction.

Only where the job store and the queue live in one database (the PostgreSQL backend) can both
be written at once; elsewhere the worker records the success first and deletes after.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from tornado_core.ports.jobs import Success


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


class CompletionPort(Protocol):
    """Records successes and acknowledges their messages atomically and durably.

    Raises ``StoreUnavailable`` when the database cannot be reached (then nothing was written).
    """

    def complete(self, completions: Sequence[Completion]) -> None:
        """Mark the jobs succeeded and delete their messages in one durable transaction."""
