"""In-memory adapters with the same semantics as the real ones, for fast unit tests.

They are never the only test of a feature: the contract suite runs the same
assertions against PostgreSQL and the SQS-compatible endpoint.
"""

from __future__ import annotations

import contextlib
import io
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from tornado_core.errors import ObjectStoreError, QueueUnavailable
from tornado_core.ports.jobs import (
    Claim,
    ClaimOutcome,
    Failure,
    JobPage,
    JobRecord,
    JobStatus,
    NewJob,
    Success,
)
from tornado_core.ports.queue import OutgoingMessage, QueueDepth, QueueSpec, ReceivedMessage


@dataclass
class _Message:
    message_id: str
    body: str
    visible_at: float
    sent_seq: int
    receive_count: int = 0
    receipt: str | None = None


@dataclass
class _Queue:
    spec: QueueSpec | None
    messages: list[_Message] = field(default_factory=list)


class MemoryQueue:
    """A thread-safe queue with SQS visibility, receive-count and redrive semantics."""

    max_send_batch = 10
    max_send_batch_bytes = 1_048_576
    max_receive_batch = 10

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._queues: dict[str, _Queue] = {}
        self._cond = threading.Condition()
        self._seq = 0
        self.down = False  # tests flip this to simulate an outage

    def ensure_queue(self, spec: QueueSpec) -> None:
        with self._cond:
            self._queues.setdefault(spec.dead_letter_name, _Queue(spec=None))
            self._queues.setdefault(spec.name, _Queue(spec=spec)).spec = spec

    def delete_queue(self, name: str) -> None:
        with self._cond:
            self._queues.pop(name, None)

    def send_batch(self, queue: str, messages: Sequence[OutgoingMessage]) -> list[str | None]:
        with self._cond:
            target = self._get(queue)
            now = self._clock()
            for message in messages:
                self._seq += 1
                target.messages.append(
                    _Message(uuid.uuid4().hex, message.body, now + message.delay, self._seq)
                )
            self._cond.notify_all()
        return [None] * len(messages)

    def receive(
        self, queue: str, *, max_messages: int, wait_seconds: float, visibility_timeout: float
    ) -> list[ReceivedMessage]:
        deadline = self._clock() + wait_seconds
        with self._cond:
            while True:
                got = self._take(self._get(queue), max_messages, visibility_timeout)
                remaining = deadline - self._clock()
                if got or remaining <= 0:
                    return got
                self._cond.wait(timeout=min(remaining, 0.05))

    def delete(self, queue: str, receipts: Sequence[str]) -> None:
        with self._cond:
            target = self._get(queue)
            wanted = set(receipts)
            target.messages = [m for m in target.messages if m.receipt not in wanted]

    def change_visibility(self, queue: str, receipt: str, timeout: float) -> None:
        with self._cond:
            for message in self._get(queue).messages:
                if message.receipt == receipt:
                    message.visible_at = self._clock() + timeout
                    self._cond.notify_all()
                    return
            raise QueueUnavailable(f"receipt {receipt!r} is not valid on {queue}")

    def depth(self, queue: str) -> QueueDepth:
        with self._cond:
            now = self._clock()
            visible = in_flight = delayed = 0
            for message in self._get(queue).messages:
                if message.visible_at <= now:
                    visible += 1
                elif message.receive_count:
                    in_flight += 1
                else:
                    delayed += 1
            return QueueDepth(visible, in_flight, delayed)

    def ping(self) -> None:
        if self.down:
            raise QueueUnavailable("memory queue is down")

    def receive_counts(self, queue: str) -> list[int]:
        """How often each message of ``queue`` was delivered (for tests)."""
        with self._cond:
            return [m.receive_count for m in self._get(queue).messages]

    def _get(self, name: str) -> _Queue:
        self.ping()
        try:
            return self._queues[name]
        except KeyError:
            raise QueueUnavailable(f"queue {name} does not exist") from None

    def _take(self, queue: _Queue, limit: int, visibility: float) -> list[ReceivedMessage]:
        now = self._clock()
        got: list[ReceivedMessage] = []
        for message in sorted(queue.messages, key=lambda m: m.sent_seq):
            if len(got) >= limit:
                break
            if message.visible_at > now:
                continue
            spec = queue.spec
            if spec is not None and message.receive_count >= spec.max_receive_count:
                queue.messages.remove(message)
                self._seq += 1
                self._queues[spec.dead_letter_name].messages.append(
                    _Message(message.message_id, message.body, now, self._seq)
                )
                continue
            message.receive_count += 1
            message.receipt = uuid.uuid4().hex
            message.visible_at = now + visibility
            got.append(
                ReceivedMessage(message.message_id, message.body, message.receipt, message.receive_count)
            )
        return got


class MemoryObjectStore:
    """Objects in a dict."""

    def __init__(self, bucket: str = "tornado") -> None:
        self.bucket = bucket
        self._objects: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def put(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> None:
        with self._lock:
            self._objects[key] = bytes(data)

    def get(self, key: str) -> bytes:
        with self._lock:
            try:
                return self._objects[key]
            except KeyError:
                raise ObjectStoreError(f"s3://{self.bucket}/{key} does not exist") from None

    def read_chunks(self, key: str, *, chunk_bytes: int = 1 << 20) -> Iterator[bytes]:
        data = self.get(key)
        for start in range(0, len(data), chunk_bytes):
            yield data[start : start + chunk_bytes]

    def exists(self, key: str) -> bool:
        with self._lock:
            return key in self._objects

    def delete(self, key: str) -> None:
        with self._lock:
            self._objects.pop(key, None)

    def list(self, prefix: str) -> list[str]:
        with self._lock:
            return sorted(k for k in self._objects if k.startswith(prefix))

    def download_url(self, key: str, *, expires_in: int, filename: str | None = None) -> str:
        """A ``memory://`` link naming the object (nothing can fetch it; for unit tests)."""
        if not self.exists(key):
            raise ObjectStoreError(f"s3://{self.bucket}/{key} does not exist")
        return f"memory://{self.bucket}/{key}?expires_in={expires_in}"

    @contextlib.contextmanager
    def upload(self, key: str, *, content_type: str = "application/octet-stream") -> Iterator[io.BytesIO]:
        """Collects the bytes; the object appears when the block ends without an error."""
        buffer = io.BytesIO()
        yield buffer
        self.put(key, buffer.getvalue(), content_type=content_type)


class MemoryJobStore:
    """Job records in a dict, with the same claim and lease rules as PostgreSQL."""

    def __init__(self, clock: Any = time.time) -> None:
        self._clock = clock
        self._jobs: dict[str, JobRecord] = {}
        self._leases: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def record_queued(self, jobs: Sequence[NewJob]) -> None:
        with self._lock:
            for job in jobs:
                if job.job_id not in self._jobs:
                    self._jobs[job.job_id] = self._new_record(job, JobStatus.QUEUED)

    def claim(self, job: NewJob, *, attempt: int, lease_seconds: float, worker: str) -> ClaimOutcome:
        with self._lock:
            record = self._jobs.get(job.job_id) or self._new_record(job, JobStatus.QUEUED)
            if record.status is JobStatus.SUCCEEDED:
                return ClaimOutcome.ALREADY_DONE
            holder = self._leases.get(job.job_id)
            if (
                record.status is JobStatus.RUNNING
                and holder
                and holder[0] != worker
                and holder[1] > self._clock()
            ):
                return ClaimOutcome.BUSY
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

    def extend_lease(self, job_id: str, *, lease_seconds: float) -> None:
        with self._lock:
            if job_id in self._leases:
                self._leases[job_id] = (self._leases[job_id][0], self._clock() + lease_seconds)

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
        finished = self._now() if status in (JobStatus.DEAD, JobStatus.FAILED) else None
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


class MemoryLimiter:
    """Per-task slots counted in this process only."""

    def __init__(self) -> None:
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    def try_acquire(self, task: str, limit: int) -> contextlib.AbstractContextManager[None] | None:
        with self._lock:
            if self._held.get(task, 0) >= limit:
                return None
            self._held[task] = self._held.get(task, 0) + 1
        return self._release(task)

    @contextlib.contextmanager
    def _release(self, task: str) -> Iterator[None]:
        try:
            yield
        finally:
            with self._lock:
                self._held[task] -= 1

    def held(self, task: str) -> int:
        """Slots currently taken for ``task``."""
        with self._lock:
            return self._held.get(task, 0)
