"""The in-memory job store: the same claim, lease and cancellation rules as PostgreSQL, for unit tests."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from tornado_core.ports.jobs import (
    FINISHED_STATUSES,
    UNRECORDED_GRACE,
    CancelOutcome,
    Claim,
    ClaimOutcome,
    Failure,
    JobCount,
    JobPage,
    JobRecord,
    JobStatus,
    NewJob,
    Success,
    cancel_outcome,
)


class MemoryJobStore:
    """Job records in a dict, with the same claim and lease rules as PostgreSQL."""

    def __init__(self, clock: Any = time.time) -> None:
        self._clock = clock
        self._jobs: dict[str, JobRecord] = {}
        self._leases: dict[str, tuple[str, float]] = {}
        self._cancel_requested: set[str] = set()
        self._unique: dict[tuple[str, str, str], tuple[str, float]] = {}  # key -> (job id, taken at)
        self._lock = threading.Lock()

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def record_queued(self, jobs: Sequence[NewJob]) -> None:
        with self._lock:
            for job in jobs:
                known = self._jobs.get(job.job_id)
                if known is None:
                    self._jobs[job.job_id] = self._new_record(job, JobStatus.QUEUED)
                elif not known.task:  # cancelled before this row was written: fill it in
                    self._jobs[job.job_id] = replace(known, task=job.task, version=job.version)

    def claim(self, job: NewJob, *, attempt: int, lease_seconds: float, worker: str) -> ClaimOutcome:
        with self._lock:
            record = self._jobs.get(job.job_id) or self._new_record(job, JobStatus.QUEUED)
            if record.status in (JobStatus.SUCCEEDED, JobStatus.CANCELLED):
                return ClaimOutcome.ALREADY_DONE
            holder = self._leases.get(job.job_id)
            if (
                record.status is JobStatus.RUNNING
                and holder
                and holder[0] != worker
                and holder[1] > self._clock()
            ):
                return ClaimOutcome.BUSY
            if job.job_id in self._cancel_requested:  # cancelled while it ran, and its lease ran out
                self._jobs[job.job_id] = replace(record, status=JobStatus.CANCELLED, finished_at=self._now())
                self._leases.pop(job.job_id, None)
                return ClaimOutcome.ALREADY_DONE
            now = self._now()
            self._jobs[job.job_id] = replace(
                record,
                status=JobStatus.RUNNING,
                attempts=record.attempts + 1,
                started_at=record.started_at or now,
                updated_at=now,
            )
            self._leases[job.job_id] = (worker, self._clock() + lease_seconds)
            return ClaimOutcome.CLAIMED

    def claim_many(self, claims: Sequence[Claim], *, lease_seconds: float) -> list[ClaimOutcome]:
        return [
            self.claim(c.job, attempt=c.attempt, lease_seconds=lease_seconds, worker=c.worker) for c in claims
        ]

    def release(self, claims: Sequence[Claim]) -> None:
        with self._lock:
            for claim in claims:
                record = self._jobs.get(claim.job.job_id)
                holder = self._leases.get(claim.job.job_id)
                if record is None or record.status is not JobStatus.RUNNING or not holder:
                    continue
                if holder[0] != claim.worker:
                    continue
                del self._leases[claim.job.job_id]
                attempts = max(0, record.attempts - 1)
                self._jobs[claim.job.job_id] = replace(
                    record,
                    status=JobStatus.RETRYING if attempts else JobStatus.QUEUED,
                    attempts=attempts,
                    started_at=record.started_at if attempts else None,
                    updated_at=self._now(),
                )

    def extend_lease(self, job_id: str, *, lease_seconds: float) -> bool:
        with self._lock:
            if job_id in self._leases:
                self._leases[job_id] = (self._leases[job_id][0], self._clock() + lease_seconds)
                return job_id in self._cancel_requested
            return False

    def request_cancel(
        self, job_id: str, *, tenant: str, issued: bool = False
    ) -> tuple[CancelOutcome, JobStatus | None]:
        with self._lock:
            record = self._jobs.get(job_id)
            if record is None and issued:
                unrecorded = NewJob(
                    job_id=job_id, tenant=tenant, task="", version="", submitted_at=self._clock()
                )
                self._jobs[job_id] = replace(
                    self._new_record(unrecorded, JobStatus.CANCELLED), finished_at=self._now()
                )
                self._cancel_requested.add(job_id)
                return CancelOutcome.CANCELLED, JobStatus.CANCELLED
            if record is None or record.tenant != tenant:
                return cancel_outcome(None, None)
            before = record.status
            if before not in FINISHED_STATUSES:
                self._cancel_requested.add(job_id)
            if before in (JobStatus.SCHEDULED, JobStatus.QUEUED, JobStatus.RETRYING):
                now = self._now()
                record = self._jobs[job_id] = replace(
                    record, status=JobStatus.CANCELLED, finished_at=now, updated_at=now
                )
            return cancel_outcome(before, record.status)

    def hold_unique(self, task: str, tenant: str, key: str, job_id: str, *, window: float) -> str:
        with self._lock:
            holder = self._unique.get((task, tenant, key))
            if holder is not None and holder[0] != job_id and self._answers_for(holder, window):
                return holder[0]
            self._unique[(task, tenant, key)] = (job_id, self._clock())
            return job_id

    def _answers_for(self, holder: tuple[str, float], window: float) -> bool:
        record = self._jobs.get(holder[0])
        if record is None:
            return bool(self._clock() - holder[1] < UNRECORDED_GRACE)
        if record.status not in FINISHED_STATUSES:
            return True
        finished = record.finished_at.timestamp() if record.finished_at else 0.0
        return bool(self._clock() - finished < window)

    def release_unique(self, task: str, tenant: str, key: str, job_id: str) -> None:
        with self._lock:
            if self._unique.get((task, tenant, key), ("",))[0] == job_id:
                del self._unique[(task, tenant, key)]

    def record_progress(self, job_id: str, *, fraction: float, note: str | None) -> None:
        self._update(job_id, progress=fraction, progress_note=note)

    def record_successes(self, successes: Sequence[Success]) -> None:
        for success in successes:
            self.record_success(success.job_id, result=success.result, result_ref=success.result_ref)

    def record_success(self, job_id: str, *, result: Any, result_ref: str | None) -> None:
        now = self._now()
        self._update(
            job_id,
            status=JobStatus.SUCCEEDED,
            result=result,
            result_ref=result_ref,
            progress=1.0,
            finished_at=now,
            error_type=None,
            error_message=None,
            error_traceback=None,
        )
        self._leases.pop(job_id, None)

    def record_failure(self, job_id: str, *, status: JobStatus, failure: Failure) -> None:
        finished = self._now() if status in FINISHED_STATUSES else None
        self._update(
            job_id,
            status=status,
            error_type=failure.error_type,
            error_message=failure.message,
            error_traceback=failure.traceback,
            finished_at=finished,
        )
        self._leases.pop(job_id, None)

    def mark(self, job_ids: Sequence[str], *, status: JobStatus) -> None:
        for job_id in job_ids:
            self._update(job_id, status=status)

    def get(self, job_id: str) -> JobRecord | None:
        with self._lock:
            return self._jobs.get(job_id)

    def list(
        self,
        *,
        tenant: str | None,
        task: str | None = None,
        status: JobStatus | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> JobPage:
        with self._lock:
            rows = [
                r
                for r in self._jobs.values()
                if (tenant is None or r.tenant == tenant)
                and (task is None or r.task == task)
                and (status is None or r.status is status)
            ]
        rows.sort(key=lambda r: r.job_id, reverse=True)
        if cursor:
            rows = [r for r in rows if r.job_id < cursor]
        page = rows[:limit]
        next_cursor = page[-1].job_id if len(rows) > limit else None
        return JobPage(page, next_cursor)

    def count_jobs(self) -> Sequence[JobCount]:
        with self._lock:
            counted = Counter((r.task, r.version, str(r.status)) for r in self._jobs.values())
        return [JobCount(task, version, status, n) for (task, version, status), n in counted.items()]

    def ping(self) -> None:
        return None

    def _new_record(self, job: NewJob, status: JobStatus) -> JobRecord:
        created = datetime.fromtimestamp(job.submitted_at or self._clock(), UTC)
        return JobRecord(
            job_id=job.job_id,
            tenant=job.tenant,
            task=job.task,
            version=job.version,
            status=status,
            attempts=0,
            progress=0.0,
            progress_note=None,
            result=None,
            result_ref=None,
            error_type=None,
            error_message=None,
            error_traceback=None,
            created_at=created,
            started_at=None,
            finished_at=None,
            updated_at=created,
        )

    def _update(self, job_id: str, **changes: Any) -> None:
        with self._lock:
            record = self._jobs.get(job_id)
            if record is not None:
                self._jobs[job_id] = replace(record, updated_at=self._now(), **changes)
