"""Smoke jobs: one job pinned to a freshly deployed version, which must succeed."""

from __future__ import annotations

from typing import Any

from tornado_core.errors import PayloadInvalid, ReleaseError
from tornado_core.ports.jobs import JobStatus
from tornado_core.ports.queue import OutgoingMessage
from tornado_core.producer.submission import Submitter
from tornado_core.releases.queues import Pace
from tornado_core.services import Services
from tornado_core.versions import VersionCatalog

#: The tenant smoke jobs are submitted as.
SMOKE_TENANT = "tornado-release"

_PENDING = frozenset({JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.RETRYING, JobStatus.SUCCEEDED})


class SmokeTest:
    """Submits a smoke job to one version's queue and waits for its outcome.

    Args:
        services: The process's services.
        catalog: Registered versions (the deploying process may lack their code).
        pace: Poll interval and clock.
    """

    def __init__(self, services: Services, catalog: VersionCatalog, pace: Pace) -> None:
        self._services = services
        self._catalog = catalog
        self._pace = pace

    def reusable(self, job_id: str | None) -> str | None:
        """``job_id`` if that smoke job succeeded or may still (a re-run after a crash waits for it)."""
        if job_id is None:
            return None
        record = self._services.jobs.get(job_id)
        return job_id if record is not None and record.status in _PENDING else None

    def submit(self, task: str, version: str, payload: dict[str, Any]) -> str:
        """Queue a smoke job pinned to ``version``; returns its id.

        Raises:
            ReleaseError: The smoke payload does not fit the task's schema.
        """
        submitter = Submitter.for_services(self._services, catalog=self._catalog)
        try:
            prepared = submitter.prepare(task=task, tenant=SMOKE_TENANT, payload=payload, version=version)
        except PayloadInvalid as exc:
            raise ReleaseError(f"smoke payload rejected: {exc} (pass --smoke-payload)") from None
        error = self._services.queue.send_batch(prepared.queue, [OutgoingMessage(prepared.body)])[0]
        if error is not None:
            raise ReleaseError(f"could not queue the smoke job: {error}")
        self._services.jobs.record_queued([prepared.as_new_job()])
        return prepared.envelope.job_id

    def wait(self, job_id: str, *, timeout: float) -> None:
        """Return once the job succeeded.

        Raises:
            ReleaseError: It failed, or did not finish within ``timeout`` seconds.
        """
        deadline = self._pace.clock() + timeout
        while True:
            record = self._services.jobs.get(job_id)
            status = record.status if record is not None else JobStatus.QUEUED
            if status is JobStatus.SUCCEEDED:
                return
            if status in (JobStatus.DEAD, JobStatus.FAILED):
                error = record.error_message if record is not None else ""
                raise ReleaseError(f"smoke job {job_id} failed: {error}")
            if self._pace.clock() > deadline:
                raise ReleaseError(f"smoke job {job_id} still {status} after {timeout:g}s")
            self._pace.sleep(self._pace.poll)
