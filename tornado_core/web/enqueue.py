"""The enqueue path: validate, send (micro-batched), then record write-behind."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, TypeVar

from tornado_core.errors import ApiError, QueueUnavailable
from tornado_core.producer.batching import SendBatcher
from tornado_core.producer.submission import PreparedJob, Submitter
from tornado_core.web.errors import translate
from tornado_core.web.requests import JobRequest, parse_job_request

_T = TypeVar("_T")


class Enqueuer:
    """Turns accepted requests into queued jobs.

    Args:
        submitter: Validation, routing, job ids and claim check.
        batcher: Sends to the queue, micro-batched, with each job's ``queued`` row.
        executor: Runs preparation of large bodies (which may upload a claim check).
        offload_above: Request bodies larger than this are prepared in the executor,
            because their payload may be claim-checked to the object store.
    """

    def __init__(
        self,
        *,
        submitter: Submitter,
        batcher: SendBatcher,
        executor: Executor,
        offload_above: int,
    ) -> None:
        self._submitter = submitter
        self._batcher = batcher
        self._executor = executor
        self._offload_above = offload_above

    async def submit(
        self, tenant: str, request: JobRequest, *, body_size: int, internal_ok: bool = False
    ) -> dict[str, str]:
        """Queue one job; return its receipt once the queue has acknowledged it.

        ``internal_ok`` lets Tornado's own endpoints queue internal tasks.

        Raises:
            TornadoError: Unknown task, invalid payload, queue or object store down.
        """
        prepared = await self._run(body_size, self._prepare, tenant, request, internal_ok)
        await self._batcher.send(prepared.queue, prepared.body, prepared.as_new_job(request.idempotency_key))
        return prepared.receipt()

    async def submit_batch(self, tenant: str, items: list[Any], *, body_size: int) -> list[dict[str, Any]]:
        """Queue every valid item; return one result per item, in order.

        Each result is ``{"index", "id", "task", "version", "status"}`` or
        ``{"index", "error": {...}}``.

        Raises:
            ApiError: 503 when nothing was accepted because a backend is down.
        """
        prepared = await self._run(body_size, self._prepare_all, tenant, items)
        await self._send_all(prepared)
        errors = [item.error for item in prepared if item.error is not None]
        if len(errors) == len(prepared):
            outage = next((e for e in errors if e.status == 503), None)
            if outage is not None:
                raise outage
        return [item.result(index) for index, item in enumerate(prepared)]

    async def _run(self, body_size: int, func: Callable[..., _T], *args: Any) -> _T:
        if body_size <= self._offload_above:
            return func(*args)
        return await asyncio.get_running_loop().run_in_executor(self._executor, func, *args)

    def _prepare(self, tenant: str, request: JobRequest, internal_ok: bool = False) -> PreparedJob:
        return self._submitter.prepare(
            task=request.task,
            tenant=tenant,
            payload=request.payload,
            idempotency_key=request.idempotency_key,
            internal_ok=internal_ok,
        )

    def _prepare_all(self, tenant: str, items: list[Any]) -> list[_Item]:
        prepared: list[_Item] = []
        for item in items:
            try:
                request = parse_job_request(item)
                prepared.append(_Item(job=self._prepare(tenant, request), key=request.idempotency_key))
            except Exception as exc:
                prepared.append(_Item(error=translate(exc)))
        return prepared

    async def _send_all(self, items: list[_Item]) -> None:
        by_queue: dict[str, list[_Item]] = defaultdict(list)
        for item in items:
            if item.job is not None:
                by_queue[item.job.queue].append(item)
        await asyncio.gather(*(self._send_queue(queue, group) for queue, group in by_queue.items()))

    async def _send_queue(self, queue: str, items: list[_Item]) -> None:
        sent = [(item, item.job) for item in items if item.job is not None]
        errors = await self._batcher.send_many(
            queue, [(job.body, job.as_new_job(item.key)) for item, job in sent]
        )
        for (item, _), error in zip(sent, errors, strict=True):
            if error is not None:
                item.job, item.error = None, translate(QueueUnavailable(error))


@dataclass
class _Item:
    """One item of a batch: the prepared job (and its idempotency key), or why it was refused."""

    job: PreparedJob | None = None
    key: str | None = None
    error: ApiError | None = None

    def result(self, index: int) -> dict[str, Any]:
        if self.error is not None:
            return {"index": index, **self.error.body()}
        assert self.job is not None
        return {"index": index, **self.job.receipt()}
