"""Queueing one job at a time outside the API: child jobs and the occurrences of schedules.

A job is queued the way a submission is (validated payload, routed version, message sent and
recorded ``queued``), synchronously, with a job id derived from an idempotency key, so that a
caller that runs again after a crash finds the job it queued instead of queueing it twice.
"""

from __future__ import annotations

from typing import Any

from tornado_core.errors import BackendError
from tornado_core.naming import queue_spec
from tornado_core.ports.queue import OutgoingMessage
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
        return self._submitter.prepare(
            task=task, tenant=tenant, payload=payload, idempotency_key=key, internal_ok=internal_ok
        )

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
        message, job = (
            OutgoingMessage(prepared.body, group=prepared.envelope.tenant),
            prepared.as_new_job(key),
        )
        if services.queue_and_jobs is not None:
            error = services.queue_and_jobs.send_recorded(prepared.queue, [message], [job])[0]
        else:
            error = services.queue.send_batch(prepared.queue, [message])[0]
        if error is not None:
            raise BackendError(f"could not queue job {job.job_id} of {job.task}: {error}")
        if services.queue_and_jobs is None:
            services.jobs.record_queued([job])
