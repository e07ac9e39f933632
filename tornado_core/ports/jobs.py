"""The job store port: status, progress, results and errors of every job."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple, Protocol


class JobStatus(StrEnum):
    """Where a job is in its life.

    ``scheduled`` accepted and waiting for its time (more than the queue's own delay ahead);
    ``queued`` accepted and waiting; ``running`` a worker holds it;
    ``retrying`` an attempt failed and another will follow; ``succeeded`` done;
    ``dead`` in the dead-letter queue awaiting an operator; ``failed`` given up
    for good (discarded from the dead-letter queue); ``cancelled`` stopped at its
    tenant's request (never ran, or stopped running at a progress report).
    """

    SCHEDULED = "scheduled"
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEAD = "dead"
    CANCELLED = "cancelled"


#: Seconds a uniqueness key stays with a job whose row is not written yet (SQS writes it behind).
UNRECORDED_GRACE = 60.0

#: Statuses a job never leaves (an operator's redrive of a dead job aside).
FINISHED_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.DEAD, JobStatus.CANCELLED})


class CancelOutcome(StrEnum):
    """What a cancellation request did."""

    CANCELLED = "cancelled"  # it was waiting (queued, scheduled or retrying): it will never run
    REQUESTED = "requested"  # it is running: the worker stops it at its next progress report
    FINISHED = "finished"  # it had already finished: nothing changed
    UNKNOWN = "unknown"  # no such job of that tenant


def cancel_outcome(before: str | None, after: str | None) -> tuple[CancelOutcome, JobStatus | None]:
    """What a cancellation did, from the job's status before it and after it (``None``: no such job)."""
    if before is None:
        return CancelOutcome.UNKNOWN, None
    now = JobStatus(after or before)
    if before == JobStatus.RUNNING:
        return CancelOutcome.REQUESTED, now
    if JobStatus(before) in FINISHED_STATUSES:
        return CancelOutcome.FINISHED, now
    return CancelOutcome.CANCELLED, now


class ClaimOutcome(StrEnum):
    """What the worker should do with a delivered job."""

    CLAIMED = "claimed"  # run it
    ALREADY_DONE = "already_done"  # it succeeded or was cancelled: acknowledge without running
    BUSY = "busy"  # another live worker holds it: hide the message and move on


class NewJob(NamedTuple):
    """A job the API accepted (recorded write-behind, off the enqueue path).

    A named tuple, not a dataclass: one is made for every job queued and claimed, and a frozen
    dataclass costs four times as much to make.
    """

    job_id: str
    tenant: str
    task: str
    version: str
    submitted_at: float
    idempotency_key: str | None = None


@dataclass(frozen=True, kw_only=True)
class Claim:
    """A delivered job a worker asks to run (see :meth:`JobStorePort.claim_many`).

    Attributes:
        job: The job, as its message describes it (recorded if the store never saw it).
        attempt: The delivery's receive count.
        worker: The holder of the lease: one per delivered message, so that a duplicate
            message of the same job is refused even in the same process.
    """

    job: NewJob
    attempt: int
    worker: str


@dataclass(frozen=True, kw_only=True)
class JobRecord:
    """Everything the store knows about one job."""

    job_id: str
    tenant: str
    task: str
    version: str
    status: JobStatus
    attempts: int
    progress: float
    progress_note: str | None
    result: Any
    result_ref: str | None
    error_type: str | None
    error_message: str | None
    error_traceback: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime

    def to_json(self) -> dict[str, Any]:
        """The job as the API shows it."""
        error = (
            {"type": self.error_type, "message": self.error_message}
            if self.error_type or self.error_message
            else None
        )
        return {
            "id": self.job_id,
            "task": self.task,
            "version": self.version,
            "status": str(self.status),
            "attempts": self.attempts,
            "progress": self.progress,
            "progress_note": self.progress_note,
            "result": self.result,
            "result_ref": self.result_ref,
            "error": error,
            "created_at": self.created_at.isoformat(),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True)
class JobPage:
    """One page of a listing; pass ``next_cursor`` back to get the next page."""

    jobs: list[JobRecord]
    next_cursor: str | None


@dataclass(frozen=True, kw_only=True)
class Success:
    """A finished attempt's result, as recorded.

    Attributes:
        job_id: The job.
        result: Its JSON result (``None`` when claim-checked).
        result_ref: The object key of a claim-checked result.
        result_json: :attr:`result` already encoded as JSON text, if the caller has it
            (stores that keep JSON text use it instead of encoding the result again).
    """

    job_id: str
    result: Any
    result_ref: str | None = None
    result_json: str | None = None


@dataclass(frozen=True, kw_only=True)
class Failure:
    """An attempt's error, as recorded."""

    error_type: str
    message: str
    traceback: str | None = None


@dataclass(frozen=True)
class JobCount:
    """How many jobs of one task version are in one status (the metrics' store counts)."""

    task: str
    version: str
    status: str
    count: int


class JobStorePort(Protocol):
    """Persistent job state. Methods raise ``StoreUnavailable`` when unreachable."""

    def record_queued(self, jobs: Sequence[NewJob]) -> None:
        """Insert accepted jobs; ids already known are left as they are."""

    def claim(self, job: NewJob, *, attempt: int, lease_seconds: float, worker: str) -> ClaimOutcome:
        """Atomically take a delivered job for running (the effectively-once gate).

        A job that succeeded or was cancelled is ``ALREADY_DONE`` (one whose cancellation was
        requested while it ran, and whose lease has run out, becomes ``cancelled`` here); one
        running under another worker's unexpired lease is ``BUSY``; anything else becomes
        ``running`` under this worker with a lease of ``lease_seconds``.
        """

    def claim_many(self, claims: Sequence[Claim], *, lease_seconds: float) -> list[ClaimOutcome]:
        """:meth:`claim` for the jobs of a whole receive, in one transaction.

        Returns:
            One outcome per claim, in order. Of two claims of the same job in one call,
            the later one is refused as the store refuses it after the first.
        """

    def release(self, claims: Sequence[Claim]) -> None:
        """Give back claimed jobs that never started (a stopping worker returns its prefetch).

        Each job whose lease its claim still holds goes back to ``queued`` (``retrying`` if an
        earlier attempt ran), without its lease, and this attempt is not counted.
        """

    def extend_lease(self, job_id: str, *, lease_seconds: float) -> bool:
        """Push the running job's lease forward (the heartbeat).

        Returns:
            Whether the job's cancellation was requested (the worker then stops it).
        """

    def request_cancel(
        self, job_id: str, *, tenant: str, issued: bool = False
    ) -> tuple[CancelOutcome, JobStatus | None]:
        """Cancel a waiting job at once, or ask its worker to stop a running one.

        Args:
            job_id: The job.
            tenant: Its tenant; another tenant's job is ``UNKNOWN``.
            issued: The caller knows the id was issued to ``tenant`` (the API checks its tag): a
                job not recorded yet (its ``queued`` row is written behind) is recorded
                ``cancelled`` now, and its ``queued`` row fills in its task and version later.

        Returns:
            What was done, and the job's status now (``None`` when it is unknown).
        """

    def hold_unique(self, task: str, tenant: str, key: str, job_id: str, *, window: float) -> str:
        """Let ``job_id`` hold a uniqueness key, unless the job holding it still answers for it.

        The holder still answers while it waits, runs or retries, for ``window`` seconds after
        it finished, and for :data:`UNRECORDED_GRACE` seconds after it took the key if its row is
        not written yet. Atomic: of concurrent callers with one key, one holds it.

        Returns:
            The job that holds the key now: ``job_id``, or the job to answer with instead.
        """

    def release_unique(self, task: str, tenant: str, key: str, job_id: str) -> None:
        """Give the key back if ``job_id`` holds it (its message could not be queued)."""

    def record_progress(self, job_id: str, *, fraction: float, note: str | None) -> None:
        """Store progress between 0 and 1 with an optional note."""

    def record_success(self, job_id: str, *, result: Any, result_ref: str | None) -> None:
        """Mark succeeded with the result (or the object key it was stored under)."""

    def record_successes(self, successes: Sequence[Success]) -> None:
        """Mark several jobs succeeded in one durable transaction (a worker's group commit)."""

    def record_failure(self, job_id: str, *, status: JobStatus, failure: Failure) -> None:
        """Mark ``retrying``, ``dead``, ``failed`` or ``cancelled`` with the error (or the reason)."""

    def mark(self, job_ids: Sequence[str], *, status: JobStatus) -> None:
        """Set the status of jobs moved by an operator (redriven, discarded)."""

    def get(self, job_id: str) -> JobRecord | None:
        """One job, or ``None``."""

    def list(
        self,
        *,
        tenant: str | None,
        task: str | None = None,
        status: JobStatus | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> JobPage:
        """Jobs newest first, filtered; ``tenant=None`` lists every tenant's (operators)."""

    def count_jobs(self) -> Sequence[JobCount]:
        """Jobs by task, version and status, every tenant's (one scan; metrics read it, cached)."""

    def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the store answers."""
