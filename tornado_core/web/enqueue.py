"""The enqueue path: validate, send (micro-batched), then record write-behind."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from tornado_core.errors import ApiError, QueueUnavailable
from tornado_core.ports.jobs import JobStatus, JobStorePort, NewJob
from tornado_core.ports.schedules import QUEUE_DELAY_LIMIT, ParkedJob, SchedulesPort
from tornado_core.producer.batching import SendBatcher
from tornado_core.producer.prepared_batch import PreparedBatch
from tornado_core.producer.submission import PreparedJob, Submitter, job_receipt
from tornado_core.web.errors import field_error, translate
from tornado_core.web.requests import JobRequest, ordinary_items, parse_job_request

if TYPE_CHECKING:
    from tornado_core.observability.metrics import ApiMetrics
    from tornado_core.observability.tracing import Tracing

_T = TypeVar("_T")


def answer_status(receipt: dict[str, Any]) -> int:
    """The status of a submission's answer: 200 for the job already holding a uniqueness key, else 202."""
    return 200 if receipt.get("existing") else 202


def batch_answer(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The answer to ``POST /v1/jobs:batch``: how many items were accepted and refused, and each result."""
    accepted = sum(1 for result in results if "error" not in result)
    return {"accepted": accepted, "rejected": len(results) - accepted, "results": results}


class Enqueuer:
    """Turns accepted requests into queued jobs.

    Args:
        submitter: Validation, routing, job ids and claim check.
        batcher: Sends to the queue, micro-batched, with each job's ``queued`` row.
        executor: Runs preparation of large bodies (which may upload a claim check).
        offload_above: Request bodies larger than this are prepared in the executor,
            because their payload may be claim-checked to the object store.
        jobs: The job store, which decides who holds a unique task's key.
        schedules: Where jobs due later than the queue can hold them wait (``None``: such
            delays are refused).
        tracing: The process's traces: a ``send`` span per submitted job, whose context its
            envelope carries (a batch's envelopes carry the request's); ``None``: off.
        metrics: Counts each job accepted (``tornado_jobs_submitted_total``); a duplicate of a
            unique job (answered with the job holding its key) is not counted, a repeated
            idempotency key is, as it queues a message again. ``None``: not counted.
    """

    def __init__(
        self,
        *,
        submitter: Submitter,
        batcher: SendBatcher,
        executor: Executor,
        offload_above: int,
        jobs: JobStorePort,
        schedules: SchedulesPort | None = None,
        tracing: Tracing | None = None,
        metrics: ApiMetrics | None = None,
    ) -> None:
        self._metrics = metrics
        self._submitter = submitter
        self._batcher = batcher
        self._executor = executor
        self._offload_above = offload_above
        self._jobs = jobs
        self._schedules = schedules
        self._tracing = tracing

    @property
    def submitter(self) -> Submitter:
        """Validation and routing of this API's submissions (schedules check their jobs with it)."""
        return self._submitter

    async def submit(
        self, tenant: str, request: JobRequest, *, body_size: int, internal_ok: bool = False
    ) -> dict[str, str]:
        """Queue one job; return its receipt once the queue has acknowledged it.

        ``internal_ok`` lets Tornado's own endpoints queue internal tasks.

        Raises:
            TornadoError: Unknown task, invalid payload, queue or object store down.
        """
        if self._tracing is None:
            receipt = await self._submit(tenant, request, body_size, internal_ok, None)
        else:
            with self._tracing.enqueue(tenant, request.task) as send:
                receipt = await self._submit(tenant, request, body_size, internal_ok, send.traceparent)
                send.queued(receipt)
        self._count(tenant, receipt)
        return receipt

    async def _submit(
        self, tenant: str, request: JobRequest, body_size: int, internal_ok: bool, traceparent: str | None
    ) -> dict[str, str]:
        if body_size <= self._offload_above:  # no claim check possible: no executor hop
            prepared = self._prepare(tenant, request, internal_ok, traceparent)
        else:
            prepared = await self._blocking(self._prepare, tenant, request, internal_ok, traceparent)
        if prepared.unique_key is not None:
            existing = await self._blocking(self._existing, tenant, prepared)
            if existing is not None:
                return existing
        try:
            new_job = prepared.as_new_job(request.idempotency_key)
            if request.delay > QUEUE_DELAY_LIMIT:
                await self._blocking(self._park, [(prepared, new_job, request.delay)])
                return prepared.receipt(str(JobStatus.SCHEDULED))
            await self._batcher.send(prepared.queue, prepared.body, new_job, delay=request.delay)
        except Exception:
            if prepared.unique_key is not None:
                await self._blocking(self._release, tenant, [prepared])
            raise
        return prepared.receipt()

    async def submit_batch(self, tenant: str, items: list[Any], *, body_size: int) -> list[dict[str, Any]]:
        """Queue every valid item; return one result per item, in order.

        Each result is ``{"index", "id", "task", "version", "status"}`` or
        ``{"index", "error": {...}}``.

        Raises:
            ApiError: 503 when nothing was accepted because a backend is down.
        """
        traceparent = self._tracing.traceparent() if self._tracing is not None else None
        batch = self._prepare_ordinary(tenant, items, body_size, traceparent)
        if batch is not None:
            results = await self._send_batch(batch)
        else:
            prepared = await self._run(body_size, self._prepare_all, tenant, items, traceparent)
            results = await self._submit_items(tenant, prepared)
        self._count(tenant, *results)
        return results

    async def _submit_items(self, tenant: str, prepared: list[_Item]) -> list[dict[str, Any]]:
        """Queue the jobs of a batch prepared one at a time; one result per item."""
        if any(item.job is not None and item.job.unique_key is not None for item in prepared):
            await self._blocking(self._hold_all, tenant, prepared)
        await self._send_all(prepared)
        failed = [item.failed for item in prepared if item.failed is not None and item.failed.unique_key]
        if failed:
            await self._blocking(self._release, tenant, failed)
        _raise_if_all_down([item.error for item in prepared if item.error is not None], len(prepared))
        return [item.result(index) for index, item in enumerate(prepared)]

    async def _send_batch(self, batch: PreparedBatch) -> list[dict[str, Any]]:
        """Queue a batch prepared together, a call per queue; one result per job, in the batch's order."""
        sent = await asyncio.gather(*(
            self._batcher.send_many(group.queue, group.messages(batch.tenant, batch.submitted_at))
            for group in batch.groups
        ))  # fmt: skip
        results: list[dict[str, Any]] = [{}] * batch.size
        errors = []
        for group, outcomes in zip(batch.groups, sent, strict=True):
            task, version = group.task, group.version
            for index, job_id, outcome in zip(group.positions, group.job_ids, outcomes, strict=True):
                if outcome is None:
                    results[index] = {"index": index, **job_receipt(job_id, task, version)}
                else:
                    errors.append(error := translate(QueueUnavailable(outcome)))
                    results[index] = {"index": index, **error.body()}
        _raise_if_all_down(errors, batch.size)
        return results

    def _count(self, tenant: str, *receipts: dict[str, Any]) -> None:
        if self._metrics is None:
            return
        counts = Counter(
            (receipt["task"], receipt["version"])
            for receipt in receipts
            if "id" in receipt and not receipt.get("existing")
        )
        for (task, version), count in counts.items():
            self._metrics.submitted(task, version, tenant, count)

    def _prepare_ordinary(
        self, tenant: str, items: list[Any], body_size: int, traceparent: str | None
    ) -> PreparedBatch | None:
        """A batch of ordinary jobs prepared together (:meth:`Submitter.prepare_many`), or ``None``."""
        if body_size > self._offload_above:  # a payload may need a claim check: prepared in the executor
            return None
        jobs = ordinary_items(items)
        if jobs is None:
            return None
        return self._submitter.prepare_many(tenant=tenant, jobs=jobs, traceparent=traceparent)

    async def _blocking(self, func: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, func, *args)

    def _existing(self, tenant: str, job: PreparedJob) -> dict[str, Any] | None:
        """The receipt of the job that holds ``job``'s uniqueness key, or ``None`` if ``job`` took it."""
        e = job.envelope
        assert job.unique_key is not None
        holder = self._jobs.hold_unique(e.task, tenant, job.unique_key, e.job_id, window=job.unique_window)
        if holder == e.job_id:
            return None
        record = self._jobs.get(holder)
        version = record.version if record is not None and record.version else e.version
        status = str(record.status) if record is not None else "queued"
        return {"id": holder, "task": e.task, "version": version, "status": status, "existing": True}

    def _hold_all(self, tenant: str, items: list[_Item]) -> None:
        """Take the keys of a batch's unique jobs in order; an item whose key is held gets its holder."""
        for item in items:
            if item.job is not None and item.job.unique_key is not None:
                item.existing = self._existing(tenant, item.job)
                if item.existing is not None:
                    item.job = None

    def _release(self, tenant: str, jobs: list[PreparedJob]) -> None:
        """Give back the uniqueness keys of jobs the queue refused."""
        for job in jobs:
            if job.unique_key is not None:
                self._jobs.release_unique(job.envelope.task, tenant, job.unique_key, job.envelope.job_id)

    async def _run(self, body_size: int, func: Callable[..., _T], *args: Any) -> _T:
        if body_size <= self._offload_above:
            return func(*args)
        return await self._blocking(func, *args)

    def _prepare(
        self, tenant: str, request: JobRequest, internal_ok: bool = False, traceparent: str | None = None
    ) -> PreparedJob:
        return self._submitter.prepare(
            task=request.task,
            tenant=tenant,
            payload=request.payload,
            idempotency_key=request.idempotency_key,
            internal_ok=internal_ok,
            traceparent=traceparent,
        )

    def _prepare_all(self, tenant: str, items: list[Any], traceparent: str | None = None) -> list[_Item]:
        prepared: list[_Item] = []
        for item in items:
            try:
                request = parse_job_request(item)
                job = self._prepare(tenant, request, traceparent=traceparent)
                prepared.append(_Item(job=job, key=request.idempotency_key, delay=request.delay))
            except Exception as exc:
                prepared.append(_Item(error=translate(exc)))
        return prepared

    def _park(self, jobs: list[tuple[PreparedJob, NewJob, float]]) -> None:
        """Keep jobs due later than the queue can hold them until a scheduler sends them."""
        if self._schedules is None:
            raise field_error(422, "request_invalid", "delay", f"at most {QUEUE_DELAY_LIMIT} seconds here")
        now = datetime.now(UTC)
        self._schedules.park([
            ParkedJob(job=job, queue=p.queue, body=p.body, due_at=now + timedelta(seconds=delay))
            for p, job, delay in jobs
        ])  # fmt: skip

    async def _send_all(self, items: list[_Item]) -> None:
        by_queue: dict[tuple[str, float], list[_Item]] = defaultdict(list)
        later = [item for item in items if item.job is not None and item.delay > QUEUE_DELAY_LIMIT]
        for item in items:
            if item.job is not None and item.delay <= QUEUE_DELAY_LIMIT:
                by_queue[(item.job.queue, item.delay)].append(item)
        sends = [self._send_queue(*key, group) for key, group in by_queue.items()]
        await asyncio.gather(*sends, *([self._park_items(later)] if later else []))

    async def _park_items(self, items: list[_Item]) -> None:
        jobs = [(j, j.as_new_job(item.key), item.delay) for item in items if (j := item.job) is not None]
        try:
            await self._blocking(self._park, jobs)
        except Exception as exc:
            for item in items:
                item.job, item.error, item.failed = None, translate(exc), item.job
        else:
            for item in items:
                item.status = str(JobStatus.SCHEDULED)

    async def _send_queue(self, queue: str, delay: float, items: list[_Item]) -> None:
        sent = [(item, item.job) for item in items if item.job is not None]
        errors = await self._batcher.send_many(
            queue, [(job.body, job.as_new_job(item.key)) for item, job in sent], delay=delay
        )
        for (item, job), error in zip(sent, errors, strict=True):
            if error is not None:
                item.job, item.error, item.failed = None, translate(QueueUnavailable(error)), job


def _raise_if_all_down(errors: list[ApiError], items: int) -> None:
    """Answer a batch none of whose items was accepted with its outage (503), if it had one."""
    if len(errors) == items:
        outage = next((e for e in errors if e.status == 503), None)
        if outage is not None:
            raise outage


@dataclass
class _Item:
    """One item of a batch: the prepared job (and its idempotency key), or why it was refused."""

    job: PreparedJob | None = None
    key: str | None = None
    delay: float = 0.0
    error: ApiError | None = None
    existing: dict[str, Any] | None = None  # the receipt of the job holding its uniqueness key
    failed: PreparedJob | None = None  # prepared, but the queue refused it
    status: str = "queued"  # or "scheduled": parked until due

    def result(self, index: int) -> dict[str, Any]:
        if self.error is not None:
            return {"index": index, **self.error.body()}
        if self.existing is not None:
            return {"index": index, **self.existing}
        assert self.job is not None
        return {"index": index, **self.job.receipt(self.status)}
