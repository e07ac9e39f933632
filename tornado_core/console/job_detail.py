"""One job as the console shows it: its record, payload and result (links when claim-checked), timeline."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tornado_core.console.dead_letters import DeadLetterRoutes
from tornado_core.errors import BackendError, EnvelopeInvalid
from tornado_core.message import Envelope
from tornado_core.naming import payload_key
from tornado_core.ports.console_jobs import DeadLetterStorePort, JobSearchPort
from tornado_core.ports.jobs import JobRecord, JobStatus, JobStorePort
from tornado_core.ports.objects import ObjectStorePort

log = logging.getLogger(__name__)

#: Statuses in which a job's message is in its version's queue or dead-letter queue.
_WITH_A_MESSAGE = frozenset({JobStatus.QUEUED, JobStatus.RETRYING, JobStatus.RUNNING, JobStatus.DEAD})


@dataclass(frozen=True, kw_only=True)
class JobDetail:
    """A job with what the console shows beside its record.

    Attributes:
        job: The record (status, progress, attempts, error and traceback, result).
        payload: The JSON payload, read from the job's message while it is in a queue or DLQ.
        payload_link: A presigned link to a claim-checked payload.
        result_link: A presigned link to a claim-checked result.
        message_queue: The queue (or DLQ) the job's message was found in.
        timeline: ``(when, what)`` from the record's times and the audit log's entries about the job,
            oldest first.
    """

    job: JobRecord
    payload: Any = None
    payload_link: str | None = None
    result_link: str | None = None
    message_queue: str | None = None
    timeline: list[tuple[datetime, str]]


class JobDetails:
    """Builds a :class:`JobDetail`.

    Args:
        jobs: The job store.
        search: The console's job search (the audit log's entries about a job).
        letters: Messages found by job id (PostgreSQL queue; SQS finds none).
        objects: The object store of claim-checked payloads and results.
        routes: The versions' queues.
        link_seconds: How long a presigned link works.
    """

    def __init__(
        self,
        *,
        jobs: JobStorePort,
        search: JobSearchPort,
        letters: DeadLetterStorePort,
        objects: ObjectStorePort,
        routes: DeadLetterRoutes,
        link_seconds: int = 300,
    ) -> None:
        self._jobs = jobs
        self._search = search
        self._letters = letters
        self._objects = objects
        self._routes = routes
        self._link_seconds = link_seconds

    def get(self, job_id: str) -> JobDetail | None:
        """The job's detail, or ``None`` if the store does not know it."""
        job = self._jobs.get(job_id)
        if job is None:
            return None
        queue, envelope = self._message(job)
        payload_ref = envelope.payload_ref if envelope is not None else self._stored_payload(job)
        return JobDetail(
            job=job,
            payload=envelope.payload if envelope is not None else None,
            payload_link=self._link(payload_ref, f"{job.job_id}-payload.json"),
            result_link=self._link(job.result_ref, f"{job.job_id}-result.json"),
            message_queue=queue,
            timeline=self._timeline(job),
        )

    def _message(self, job: JobRecord) -> tuple[str | None, Envelope | None]:
        """The queue holding the job's message and its envelope, if it is still queued or dead."""
        if job.status not in _WITH_A_MESSAGE or not job.task:
            return None, None
        try:
            found = self._letters.find(self._routes.queues(job.task, job.version), job.job_id)
        except (ValueError, BackendError) as exc:
            log.warning("could not look for the message of job %s: %s", job.job_id, exc)
            return None, None
        if found is None:
            return None, None
        try:
            return found[0], Envelope.from_json(found[1].body)
        except EnvelopeInvalid:
            return found[0], None

    def _stored_payload(self, job: JobRecord) -> str | None:
        """The key of the job's claim-checked payload, if the object store has one."""
        key = payload_key(job.task, job.job_id)
        try:
            return key if self._objects.exists(key) else None
        except BackendError as exc:
            log.warning("could not look for the payload of job %s: %s", job.job_id, exc)
            return None

    def _link(self, key: str | None, filename: str) -> str | None:
        if key is None:
            return None
        try:
            return self._objects.download_url(key, expires_in=self._link_seconds, filename=filename)
        except BackendError as exc:
            log.warning("could not sign a link to %s: %s", key, exc)
            return None

    def _timeline(self, job: JobRecord) -> list[tuple[datetime, str]]:
        events = [(job.created_at, f"created for {job.tenant} on version {job.version}")]
        if job.started_at is not None:
            events.append((job.started_at, "first attempt started"))
        if job.finished_at is not None:
            events.append((job.finished_at, f"finished: {job.status}"))
        if job.updated_at not in {at for at, _ in events}:
            note = f" ({job.progress_note})" if job.progress_note else ""
            events.append((job.updated_at, f"last change: {job.status}, attempt {job.attempts}{note}"))
        events.extend(
            (entry.at, f"{entry.action} by {entry.actor}") for entry in self._search.audit_trail(job.job_id)
        )
        return sorted(events, key=lambda event: event[0])
