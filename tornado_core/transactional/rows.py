"""Submission rows made into jobs, as the API would: checked, prepared, uniqueness keys held, queued.

The outbox relay (rows of an application's outbox table) and the Celery intake (``tornado.submit``
messages on a broker) submit the same way: each row is prepared under its idempotency key (so a
row submitted twice is one job), a unique task's key is held first (a row whose key another job
holds is answered by that job and sends nothing), and the prepared jobs are queued together. A
row no task version accepts is set aside with the reason instead of blocking the rows behind it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from tornado_core.errors import BackendError
from tornado_core.ports.jobs import JobStorePort
from tornado_core.ports.transactional import OutboxRow
from tornado_core.producer.direct import JobSender, JobToSend
from tornado_core.producer.submission import Submitter
from tornado_core.transactional.entries import check_job
from tornado_core.transactional.tenants import KnownTenants


@dataclass(frozen=True)
class RowsOutcome:
    """What became of each row, by row id.

    Attributes:
        sent: Rows queued as jobs.
        existing: Rows of a unique task whose key another job holds (that job answers them).
        failed: Rows no task version could accept, with the reason.
    """

    sent: list[int] = field(default_factory=list)
    existing: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)

    @property
    def settled(self) -> list[int]:
        """The rows that need nothing more: sent, or answered by an existing job."""
        return self.sent + self.existing


class RowSubmitter:
    """Submits rows through the producer path of this process's services.

    Args:
        submitter: Prepares jobs as the API does (routing included).
        sender: Queues prepared jobs.
        jobs: The job store (uniqueness keys).
        tenants: Which tenants exist.
        source: What the rows are, for the log (``outbox``, ``celery intake``).
    """

    def __init__(
        self,
        *,
        submitter: Submitter,
        sender: JobSender,
        jobs: JobStorePort,
        tenants: KnownTenants,
        source: str,
    ) -> None:
        self._submitter = submitter
        self._sender = sender
        self._jobs = jobs
        self._tenants = tenants
        self._log = logging.getLogger(f"tornado.{source.replace(' ', '_')}")
        self._source = source

    def submit(self, rows: Sequence[OutboxRow]) -> RowsOutcome:
        """Queue every acceptable row; nothing is queued if the queue or store fails.

        Raises:
            BackendError: The queue, job store, tenant store or object store failed: submit the
                same rows again (their idempotency keys make that one job each).
        """
        ready, failed = self._prepare_all(rows)
        distinct, repeated = _distinct(ready)
        to_send, existing = self._hold_unique(distinct)
        existing += repeated
        try:
            self._sender.send([job for _, job in to_send])
        except BaseException:
            self._release_unique([job for _, job in to_send])
            raise
        return RowsOutcome([row_id for row_id, _ in to_send], existing, failed)

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
                self._log.warning(
                    "%s: row %d (%s for %s) refused: %s", self._source, row.row_id, row.task, row.tenant, exc
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
                    self._log.info(
                        "%s: row %d: job %s holds its uniqueness key", self._source, row_id, holder
                    )
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
                    self._log.warning(
                        "%s: could not give back the key of job %s: %s", self._source, e.job_id, exc
                    )


def _distinct(ready: list[tuple[int, JobToSend]]) -> tuple[list[tuple[int, JobToSend]], list[int]]:
    """The first row of each job id, and the rows that repeat one (the same tenant, task and key:
    the same job, answered by the first)."""
    seen: set[str] = set()
    distinct: list[tuple[int, JobToSend]] = []
    repeated: list[int] = []
    for row_id, item in ready:
        job_id = item.job.envelope.job_id
        if job_id in seen:
            repeated.append(row_id)
        else:
            seen.add(job_id)
            distinct.append((row_id, item))
    return distinct, repeated
