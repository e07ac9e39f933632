"""The intake loop: receive ``tornado.submit`` messages, submit them as jobs, then acknowledge them.

A message is deleted only after its job is queued (or found held by a unique job), so a crash
anywhere submits it again, under the same idempotency key: the same job. A message that cannot
make a job (another task, bad arguments, an unknown task or tenant, an invalid payload) goes to
the intake's dead-letter queue with the reason in the log; a backend failure leaves the batch to
come back after its visibility timeout, and a message that keeps failing ends in the dead-letter
queue after the intake queue's ``max_receive_count`` deliveries.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from tornado_core.adapters.celery.protocol import read_task
from tornado_core.errors import BackendError, TornadoError
from tornado_core.intake.submissions import submission_row
from tornado_core.ports.queue import OutgoingMessage, QueuePort, QueueSpec, ReceivedMessage
from tornado_core.ports.transactional import OutboxRow
from tornado_core.transactional.rows import RowSubmitter

logger = logging.getLogger("tornado.intake")


@dataclass(frozen=True, kw_only=True)
class IntakeOptions:
    """How the intake paces itself.

    Attributes:
        poll_wait: Long-poll seconds of each receive.
        retry_wait: Pause after a backend failure (the batch comes back after its visibility timeout).
    """

    poll_wait: float = 5.0
    retry_wait: float = 2.0


@dataclass(frozen=True)
class IntakeReport:
    """What one receive did: messages received, jobs queued, answered by a unique job, refused."""

    received: int = 0
    sent: int = 0
    existing: int = 0
    refused: int = 0


class CeleryIntake:
    """Turns the intake queue's ``tornado.submit`` messages into jobs.

    Args:
        queue: The queue port (the Celery engine's).
        spec: The intake queue and its dead-letter queue.
        rows: Submits rows through this process's producer path.
        options: Pacing.
    """

    def __init__(
        self, *, queue: QueuePort, spec: QueueSpec, rows: RowSubmitter, options: IntakeOptions | None = None
    ) -> None:
        self._queue = queue
        self._spec = spec
        self._rows = rows
        self._options = options or IntakeOptions()

    @property
    def queue_name(self) -> str:
        """The intake queue's name (where Celery apps send ``tornado.submit``)."""
        return self._spec.name

    def intake_once(self, wait: float | None = None) -> IntakeReport:
        """Receive one batch (waiting up to ``wait`` seconds, default the poll wait) and submit it.

        Raises:
            BackendError: The queue, job store or object store failed: the batch is not acknowledged.
        """
        spec = self._spec
        received = self._queue.receive(
            spec.name, max_messages=self._queue.max_receive_batch, visibility_timeout=spec.visibility_timeout,
            wait_seconds=self._options.poll_wait if wait is None else wait,
        )  # fmt: skip
        if not received:
            return IntakeReport()
        rows, refused = _read_all(received)
        outcome = self._rows.submit(rows)
        refused.update(outcome.failed)
        self._dead_letter([received[n] for n in sorted(refused)])
        self._queue.delete(spec.name, [received[n].receipt for n in outcome.settled + sorted(refused)])
        report = IntakeReport(len(received), len(outcome.sent), len(outcome.existing), len(refused))
        logger.info("intake: %d message(s): %d queued, %d held by a unique job, %d refused", *_counts(report))
        return report

    def run(self, stop: threading.Event) -> None:
        """Create the intake queue, then take submissions until ``stop`` is set (the batch at hand is
        finished first).

        Raises:
            QueueUnavailable: The broker cannot be reached at start.
        """
        self._queue.ensure_queue(self._spec)
        while not stop.is_set():
            try:
                self.intake_once()
            except BackendError as exc:
                logger.warning("intake: batch not taken (%s); retrying in %gs", exc, self._options.retry_wait)
                stop.wait(self._options.retry_wait)

    def _dead_letter(self, messages: Sequence[ReceivedMessage]) -> None:
        """Send refused messages to the intake's dead-letter queue, as they came."""
        if messages:
            self._queue.send_batch(self._spec.dead_letter_name, [OutgoingMessage(m.body) for m in messages])


def _read_all(received: Sequence[ReceivedMessage]) -> tuple[list[OutboxRow], dict[int, str]]:
    """The submissions among the messages (numbered by position), and why each other was refused."""
    rows: list[OutboxRow] = []
    refused: dict[int, str] = {}
    for number, message in enumerate(received):
        try:
            rows.append(submission_row(number, read_task(message.body)))
        except TornadoError as exc:  # not a Celery message (EnvelopeInvalid), or not a job (EntryInvalid)
            refused[number] = str(exc)
            logger.warning("intake: message %s refused: %s", message.message_id, exc)
    return rows, refused


def _counts(report: IntakeReport) -> tuple[int, int, int, int]:
    return report.received, report.sent, report.existing, report.refused
