"""Enqueue inside the caller's transaction, when Tornado's PostgreSQL queue lives in the caller's database.

The job is prepared exactly as the API prepares it (:class:`~tornado_core.producer.submission.Submitter`:
validation, version routing, job id, envelope, claim check), then its message and its ``queued``
row are written with the caller's connection and left for the caller to commit. ``COMMIT``: the
job exists and the workers are woken (the queue's ``NOTIFY`` is delivered at commit). ``ROLLBACK``:
there never was a job.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from tornado_core.errors import TornadoError
from tornado_core.ports.queue import OutgoingMessage
from tornado_core.ports.transactional import CallerTransactionPort, Holder
from tornado_core.producer.submission import PreparedJob, Submitter
from tornado_core.transactional.entries import EntryInvalid, check_job
from tornado_core.transactional.tenants import KnownTenants

#: Messages per statement (the PostgreSQL queue's batch bound).
_CHUNK = 500
_JOB_FIELDS = frozenset({"task", "payload", "idempotency_key", "delay"})


class TransactionalEnqueuer:
    """Queues jobs in the caller's transaction (PostgreSQL queue in the caller's database).

    Build it once per process with :func:`tornado_core.bootstrap.open_transactional_enqueuer`, and
    share it between threads; each call takes the connection of the transaction at hand.

    Args:
        submitter: Prepares jobs as the API does.
        writes: Writes the queue and the job store with the caller's connection.
        tenants: Which tenants exist.
    """

    def __init__(self, *, submitter: Submitter, writes: CallerTransactionPort, tenants: KnownTenants) -> None:
        self._submitter = submitter
        self._writes = writes
        self._tenants = tenants

    def submit(
        self,
        connection: Any,
        tenant: str,
        task: str,
        payload: dict[str, Any],
        *,
        idempotency_key: str | None = None,
        delay: float = 0.0,
    ) -> dict[str, Any]:
        """Queue one job in the transaction of ``connection``; it exists once that transaction commits.

        Args:
            connection: The caller's psycopg2 connection, in a transaction (not autocommit), on the
                database that holds Tornado's queue.
            tenant: The tenant the job belongs to.
            task: Task name.
            payload: JSON payload (a dict).
            idempotency_key: Same key (for this tenant and task), same job id.
            delay: Seconds (0 to 900) after the commit before the job may run.

        Returns:
            The receipt ``{"id", "task", "version", "status"}``, as the API answers; with
            ``"existing": true`` when a job of a unique task holds the key (nothing was queued).

        Raises:
            EntryInvalid: A malformed tenant, task name, key, delay or payload.
            UnknownTenant: No such tenant.
            TaskNotFound, TaskNotSubmittable, PayloadInvalid: As the API refuses them.
            ConfigError: The connection is in autocommit mode, its transaction already failed, or
                its database has no Tornado queue.
            QueueUnavailable: The task's queue does not exist (start its API or worker once).

        On a refusal nothing was written and the caller's transaction is still usable.
        """
        job = {"task": task, "payload": payload, "idempotency_key": idempotency_key, "delay": delay}
        return self.submit_many(connection, tenant, [job])[0]

    def submit_many(
        self, connection: Any, tenant: str, jobs: Sequence[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        """Queue several jobs in the transaction of ``connection``: all of them, or (raising) none.

        Args:
            connection: As for :meth:`submit`.
            tenant: The tenant they belong to.
            jobs: ``{"task", "payload", "idempotency_key"?, "delay"?}`` each.

        Returns:
            One receipt per job, in order.

        Raises:
            TornadoError: As :meth:`submit`, with a note naming the job (its index) refused.
        """
        self._writes.check(connection)
        prepared = [self._prepare(tenant, index, job) for index, job in enumerate(jobs)]
        receipts: list[dict[str, Any]] = []
        to_send: dict[tuple[str, float], list[tuple[PreparedJob, str | None]]] = defaultdict(list)
        with self._writes.atomic(connection):
            for job, key, delay in prepared:
                holder = self._hold(connection, tenant, job)
                if holder is not None:
                    receipts.append(_existing(job, holder))
                else:
                    to_send[(job.queue, delay)].append((job, key))
                    receipts.append(job.receipt())
            for (queue, delay), group in to_send.items():
                self._send(connection, queue, delay, group)
        return receipts

    def _send(
        self, connection: Any, queue: str, delay: float, group: Sequence[tuple[PreparedJob, str | None]]
    ) -> None:
        for start in range(0, len(group), _CHUNK):
            chunk = group[start : start + _CHUNK]
            messages = [OutgoingMessage(job.body, delay) for job, _ in chunk]
            rows = [job.as_new_job(key) for job, key in chunk]
            self._writes.send_recorded(connection, queue, messages, rows)

    def _prepare(
        self, tenant: str, index: int, job: Mapping[str, Any]
    ) -> tuple[PreparedJob, str | None, float]:
        try:
            unknown = sorted(set(job) - _JOB_FIELDS)
            if unknown:
                raise EntryInvalid([{"field": name, "message": "unknown field"} for name in unknown])
            key, delay = job.get("idempotency_key"), job.get("delay") or 0.0
            check_job(tenant, job.get("task"), job.get("payload"), key, delay)
            self._tenants.require(tenant)
            prepared = self._submitter.prepare(
                task=job["task"], tenant=tenant, payload=job["payload"], idempotency_key=key
            )
        except TornadoError as exc:
            exc.add_note(f"(job {index} of the call; nothing was queued)")
            raise
        return prepared, key, float(delay)

    def _hold(self, connection: Any, tenant: str, job: PreparedJob) -> Holder | None:
        """The job that holds ``job``'s uniqueness key, or ``None`` (``job`` holds it, or has none)."""
        if job.unique_key is None:
            return None
        e = job.envelope
        return self._writes.hold_unique(
            connection, e.task, tenant, job.unique_key, e.job_id, window=job.unique_window
        )


def _existing(job: PreparedJob, holder: Holder) -> dict[str, Any]:
    """The receipt of the job holding ``job``'s key, as the API answers it."""
    e = job.envelope
    return {
        "id": holder.job_id,
        "task": e.task,
        "version": holder.version or e.version,
        "status": holder.status or "queued",
        "existing": True,
    }
