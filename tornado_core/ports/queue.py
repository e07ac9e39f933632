"""The queue port: SQS semantics (visibility timeout, receive count, DLQ by redrive)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol


@dataclass(frozen=True, kw_only=True)
class QueueSpec:
    """A work queue and its dead-letter queue.

    Attributes:
        name: Queue name (letters, digits, ``-`` and ``_``; at most 80 characters).
        dead_letter_name: Name of its dead-letter queue.
        max_receive_count: Receives after which the next receive moves a
            message to the dead-letter queue instead of delivering it.
        visibility_timeout: Default seconds a received message stays hidden.
        fair: Hand messages out round-robin across their groups (the jobs' tenants) rather than
            oldest first, so one group's backlog does not hold back the others.
    """

    name: str
    dead_letter_name: str
    max_receive_count: int
    visibility_timeout: float
    fair: bool = False


class OutgoingMessage(NamedTuple):
    """A message to send; ``delay`` seconds before it becomes visible (at most 900).

    ``group`` (the job's tenant) is what a fair queue takes turns between. A named tuple: one is
    made for every message sent.
    """

    body: str
    delay: float = 0.0
    group: str | None = None


@dataclass(frozen=True)
class ReceivedMessage:
    """A delivered message.

    Attributes:
        message_id: The queue's id of the message.
        body: The message body.
        receipt: Handle for delete and change-visibility; valid until redelivered.
        receive_count: How many times it has been delivered, this time included.
    """

    message_id: str
    body: str
    receipt: str
    receive_count: int


@dataclass(frozen=True)
class QueueDepth:
    """Approximate counts of a queue's messages."""

    visible: int
    in_flight: int
    delayed: int

    @property
    def total(self) -> int:
        """All messages not yet deleted."""
        return self.visible + self.in_flight + self.delayed


class QueuePort(Protocol):
    """What Tornado needs from a queue. Both adapters pass one contract suite.

    Every method raises :class:`tornado_core.errors.QueueUnavailable` when the
    queue cannot be reached.
    """

    #: Largest number of messages one ``send_batch`` call accepts.
    max_send_batch: int
    #: Largest sum of the bodies' UTF-8 bytes one ``send_batch`` call accepts.
    max_send_batch_bytes: int
    #: Most messages one ``receive`` returns (SQS: 10).
    max_receive_batch: int

    def ensure_queue(self, spec: QueueSpec) -> None:
        """Create the queue and its DLQ with the redrive policy; idempotent."""

    def delete_queue(self, name: str) -> None:
        """Delete a queue and its messages; a missing queue is not an error."""

    def send_batch(self, queue: str, messages: Sequence[OutgoingMessage]) -> list[str | None]:
        """Durably store up to ``max_send_batch`` messages of ``max_send_batch_bytes`` in all.

        Returns:
            For each message, ``None`` if it was stored, else an error text.
        """

    def receive(
        self, queue: str, *, max_messages: int, wait_seconds: float, visibility_timeout: float
    ) -> list[ReceivedMessage]:
        """Long-poll for up to ``max_messages`` (at most :attr:`max_receive_batch`) visible messages."""

    def delete(self, queue: str, receipts: Sequence[str]) -> None:
        """Delete delivered messages (acknowledge them)."""

    def change_visibility(self, queue: str, receipt: str, timeout: float) -> None:
        """Hide a delivered message for ``timeout`` more seconds (0 shows it at once)."""

    def depth(self, queue: str) -> QueueDepth:
        """Approximate visible, in-flight and delayed counts."""

    def ping(self) -> None:
        """Raise ``QueueUnavailable`` unless the queue service answers."""
