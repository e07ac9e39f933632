"""The outbox relay: committed outbox rows become jobs, each exactly once.

One batch is one transaction on the outbox: claim rows (``FOR UPDATE SKIP LOCKED``, so relays
share the work), prepare each as the API would, queue them, then delete them in that same
transaction. A relay killed after queueing but before its commit leaves the rows to the next
one, which queues them again under the same idempotency keys, hence the same job ids: the job
store and the worker's claim gate make that one job. A row no task version could accept is
marked failed with the reason instead of blocking the rows behind it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from tornado_core.errors import BackendError
from tornado_core.ports.jobs import JobStorePort
from tornado_core.ports.transactional import OutboxStorePort
from tornado_core.producer.direct import JobSender
from tornado_core.producer.submission import Submitter
from tornado_core.transactional.rows import RowSubmitter
from tornado_core.transactional.tenants import KnownTenants

logger = logging.getLogger("tornado.outbox")


@dataclass(frozen=True, kw_only=True)
class RelayOptions:
    """How the relay paces itself.

    Attributes:
        batch_size: Rows per claim (one transaction).
        idle_wait: Longest wait for new rows when the outbox is empty (a commit's notice ends it).
        retry_wait: Pause after a backend failure before the rows are tried again.
    """

    batch_size: int = 100
    idle_wait: float = 1.0
    retry_wait: float = 2.0


@dataclass(frozen=True)
class RelayReport:
    """What one batch did: rows claimed, queued, marked failed, and answered by a unique job's holder."""

    claimed: int = 0
    sent: int = 0
    failed: int = 0
    existing: int = 0


class OutboxRelay:
    """Turns committed outbox rows into jobs, through the producer path of this process's services.

    Args:
        outbox: The outbox in the application's database.
        submitter: Prepares jobs as the API does (routing included).
        sender: Queues prepared jobs.
        jobs: The job store (uniqueness keys).
        tenants: Which tenants exist.
        options: Pacing.
    """

    def __init__(
        self,
        *,
        outbox: OutboxStorePort,
        submitter: Submitter,
        sender: JobSender,
        jobs: JobStorePort,
        tenants: KnownTenants,
        options: RelayOptions | None = None,
    ) -> None:
        self._outbox = outbox
        self._rows = RowSubmitter(
            submitter=submitter, sender=sender, jobs=jobs, tenants=tenants, source="outbox"
        )
        self._options = options or RelayOptions()

    def relay_once(self) -> RelayReport:
        """Relay one batch of pending rows.

        Raises:
            BackendError: The queue, job store or object store failed: the batch's rows stay
                pending, untouched.
            ConfigError: The outbox table is missing.
        """
        with self._outbox.claim(self._options.batch_size) as batch:
            if not batch.rows:
                return RelayReport()
            outcome = self._rows.submit(batch.rows)
            batch.settle(outcome.settled, outcome.failed)
        report = RelayReport(len(batch.rows), len(outcome.sent), len(outcome.failed), len(outcome.existing))
        logger.info("outbox: %d row(s): %d queued, %d failed, %d held by a unique job", *_counts(report))
        return report

    def run(self, stop: threading.Event) -> None:
        """Relay until ``stop`` is set (the batch at hand is finished first).

        Raises:
            ConfigError: The outbox table is missing.
        """
        while not stop.is_set():
            try:
                report = self.relay_once()
            except BackendError as exc:
                logger.warning(
                    "outbox: batch left pending (%s); retrying in %gs", exc, self._options.retry_wait
                )
                stop.wait(self._options.retry_wait)
                continue
            if report.claimed < self._options.batch_size and not stop.is_set():
                self._outbox.wait(self._options.idle_wait)


def _counts(report: RelayReport) -> tuple[int, int, int, int]:
    return report.claimed, report.sent, report.failed, report.existing
