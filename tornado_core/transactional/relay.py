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
from collections.abc import Sequence
from dataclasses import dataclass

from tornado_core.errors import BackendError
from tornado_core.ports.jobs import JobStorePort
from tornado_core.ports.transactional import OutboxRow, OutboxStorePort
from tornado_core.producer.direct import JobSender, JobToSend
from tornado_core.producer.submission import Submitter
from tornado_core.transactional.entries import check_job
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
        self._submitter = submitter
        self._sender = sender
        self._jobs = jobs
        self._tenants = tenants
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
            ready, failed = self._prepare_all(batch.rows)
            to_send, existing = self._hold_unique(ready)
            try:
                self._sender.send([job for _, job in to_send])
            except BaseException:
                self._release_unique([job for _, job in to_send])
                raise
            batch.settle([row_id for row_id, _ in to_send] + existing, failed)
        report = RelayReport(len(batch.rows), len(to_send), len(failed), len(existing))
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

    def _prepare_all(self, rows: Sequence[OutboxRow]) -> tuple[list[tuple[int, JobToSend]], dict[int, str]]:
        """The rows' prepared jobs, and why each refused row was refused.

        Raises:
            BackendError: A claim check upload or the tenant store failed (nothing is refused for it).
        """
        ready: list[tuple[int, JobToSend]] = []
        failed: dict[int, str] = {}
        for row in rows:
            try:
                ready.append((row.row_id, self._prepare(row)))
            except BackendError:
                raise
            except Exception as exc:  # a row no version accepts (or a task's check that broke): set aside
                failed[row.row_id] = f"{type(exc).__name__}: {exc}"
                logger.warning(
                    "outbox: row %d (%s for %s) refused: %s", row.row_id, row.task, row.tenant, exc
                )
        return ready, failed

    def _prepare(self, row: OutboxRow) -> JobToSend:
        check_job(row.tenant, row.task, row.payload, row.idempotency_key, row.delay)
        self._tenants.require(row.tenant)
        job = self._submitter.prepare(
            task=row.task, tenant=row.tenant, payload=row.payload, idempotency_key=row.idempotency_key
        )
        return JobToSend(job, row.idempotency_key, row.delay)

    def _hold_unique(
        self, ready: list[tuple[int, JobToSend]]
    ) -> tuple[list[tuple[int, JobToSend]], list[int]]:
        """The rows to send, and those whose unique task's key another job holds (nothing to send)."""
        to_send: list[tuple[int, JobToSend]] = []
        existing: list[int] = []
        for row_id, item in ready:
            job, e = item.job, item.job.envelope
            if job.unique_key is not None:
                holder = self._jobs.hold_unique(
                    e.task, e.tenant, job.unique_key, e.job_id, window=job.unique_window
                )
                if holder != e.job_id:
                    logger.info("outbox: row %d: job %s holds its uniqueness key", row_id, holder)
                    existing.append(row_id)
                    continue
            to_send.append((row_id, item))
        return to_send, existing

    def _release_unique(self, sent: Sequence[JobToSend]) -> None:
        """Give back the keys of jobs that were not queued (best effort: a resend takes them again)."""
        for item in sent:
            job, e = item.job, item.job.envelope
            if job.unique_key is not None:
                try:
                    self._jobs.release_unique(e.task, e.tenant, job.unique_key, e.job_id)
                except BackendError as exc:
                    logger.warning("outbox: could not give back the key of job %s: %s", e.job_id, exc)


def _counts(report: RelayReport) -> tuple[int, int, int, int]:
    return report.claimed, report.sent, report.failed, report.existing
