"""Queueing jobs synchronously outside the API: child jobs, schedules' occurrences, the outbox relay.

A job is queued the way a submission is (validated payload, routed version, message sent and
recorded ``queued``: on PostgreSQL both in one commit), with a job id derived from an idempotency
key, so that a caller that runs again after a crash finds the job it queued instead of queueing it
twice. :class:`JobSender` sends prepared jobs in the queue's batches; :class:`DirectSubmitter`
prepares and sends one job at a time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tornado_core.errors import BackendError, QueueUnavailable
from tornado_core.naming import queue_spec
from tornado_core.ports.queue import OutgoingMessage
from tornado_core.producer.batching import chunks_of
from tornado_core.producer.submission import PreparedJob, Submitter
from tornado_core.services import Services


class DirectSubmitter:
    """Queues jobs one by one on the process's services.

    Args:
        services: Registry, queue, job store and settings.
        submitter: Validation and routing; one on ``services`` (newest versions) by default.
    """

    def __init__(self, services: Services, submitter: Submitter | None = None) -> None:
        self._services = services
        self._submitter = submitter
        self._sender = JobSender(services)
        self._queues: set[str] = set()

    def prepare(
        self, *, task: str, tenant: str, payload: Any, key: str, internal_ok: bool = False
    ) -> PreparedJob:
        """Validate and build the job of ``key`` without queueing it.

        Raises:
            TornadoError: Unknown task, invalid payload, object store down (claim check).
        """
        if self._submitter is None:
            self._submitter = Submitter.for_services(self._services)
        # A child job queued inside a traced job's run joins its trace; elsewhere there is no span.
        tracing = self._services.tracing
        return self._submitter.prepare(
            task=task, tenant=tenant, payload=payload, idempotency_key=key, internal_ok=internal_ok,
            traceparent=tracing.traceparent() if tracing is not None else None,
        )  # fmt: skip

    def submit(
        self,
        *,
        task: str,
        tenant: str,
        payload: Any,
        key: str,
        internal_ok: bool = False,
        record_key: bool = False,
    ) -> str:
        """Queue the job of ``key`` unless it already is; its job id.

        Args:
            task: The task.
            tenant: Whose job it is.
            payload: Its payload.
            key: The idempotency key its id derives from.
            internal_ok: Allow internal tasks.
            record_key: Keep ``key`` in the job's row (text without NUL characters).

        Raises:
            TornadoError: As :meth:`prepare`, or ``BackendError`` if the queue refused it.
        """
        prepared = self.prepare(task=task, tenant=tenant, payload=payload, key=key, internal_ok=internal_ok)
        job_id = prepared.envelope.job_id
        if self._services.jobs.get(job_id) is None:
            self.send(prepared, key=key if record_key else None)
        elif record_key:
            # Queued before by a caller that died between the message and its row (SQS writes the row
            # second): a worker may have run the job already, recording it from the message, which
            # carries no key. The row gets its key now; nothing else in it changes.
            self._services.jobs.record_queued([prepared.as_new_job(key)])
        return job_id

    def send(self, prepared: PreparedJob, *, key: str | None = None) -> None:
        """Send a prepared job's message, then record it ``queued`` (both at once where they share
        a database), with ``key`` as its idempotency key.

        Raises:
            BackendError: The queue or the job store refused it.
        """
        services = self._services
        if prepared.queue not in self._queues:  # no worker of the task may have created it yet
            spec = services.registry.get(prepared.envelope.task, prepared.envelope.version)
            services.queue.ensure_queue(queue_spec(services.settings.queue_prefix, spec))
            self._queues.add(prepared.queue)
        try:
            self._sender.send([JobToSend(prepared, key)])
        except QueueUnavailable as exc:
            raise BackendError(f"could not queue job {prepared.envelope.job_id}: {exc}") from exc


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
        messages = [OutgoingMessage(item.job.body, delay, item.job.envelope.tenant) for item in chunk]
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
