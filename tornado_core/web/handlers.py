"""Request handlers: thin adapters from HTTP to the enqueue path and the job store."""

from __future__ import annotations

import asyncio
from typing import Any

from tornado_core.errors import ApiError, JobNotFound
from tornado_core.ports.jobs import CancelOutcome
from tornado_core.web.base import AuthenticatedHandler, BaseHandler, JsonBodyHandler
from tornado_core.web.enqueue import answer_status, batch_answer
from tornado_core.web.requests import parse_batch, parse_job_request, parse_list_query


class JobsHandler(JsonBodyHandler):
    """``POST /v1/jobs`` submits one job; ``GET /v1/jobs`` lists the tenant's jobs."""

    async def post(self) -> None:
        """202 with the receipt once the queue has the job; 200 with the job holding its uniqueness key."""
        request = parse_job_request(self.json_body())
        receipt = await self.within_deadline(
            self.api.enqueuer.submit(self.tenant, request, body_size=self.body_size)
        )
        self.write_json(receipt, answer_status(receipt))

    async def get(self) -> None:
        """One page of jobs, newest first; ``next_cursor`` fetches the next page."""
        query = parse_list_query(self.query_argument)
        page = await self.run_blocking(
            self.api.services.jobs.list,
            tenant=self.tenant,
            task=query.task,
            status=query.status,
            limit=query.limit,
            cursor=query.cursor,
        )
        self.write_json({"jobs": [job.to_json() for job in page.jobs], "next_cursor": page.next_cursor})


class BatchHandler(JsonBodyHandler):
    """``POST /v1/jobs:batch``: up to 500 jobs, each accepted or refused on its own."""

    async def post(self) -> None:
        """200 with one result per item (503 only if an outage refused every item)."""
        items = parse_batch(self.json_body())
        submitted = self.api.enqueuer.submit_batch(self.tenant, items, body_size=self.body_size)
        self.write_json(batch_answer(await self.within_deadline(submitted)))


class JobHandler(AuthenticatedHandler):
    """``GET /v1/jobs/{id}``: one job of the caller's tenant."""

    async def get(self, job_id: str) -> None:
        """The job; ``{"id", "status": "queued"}`` for one of ours the store has not recorded yet.

        Ids of other tenants are 404 without a store lookup (their MAC does not match).
        """
        if not self.api.services.job_ids.belongs_to(job_id, self.tenant):
            raise JobNotFound(job_id)
        record = await self.run_blocking(self.api.services.jobs.get, job_id)
        if record is None:
            self.write_json({"id": job_id, "status": "queued"})
        elif record.tenant != self.tenant:
            raise JobNotFound(job_id)
        else:
            self.write_json(record.to_json())


class CancelHandler(AuthenticatedHandler):
    """``POST /v1/jobs/{id}:cancel``: cancel a waiting job, or ask a running one to stop."""

    async def post(self, job_id: str) -> None:
        """200 cancelled, 202 stop requested, 404 not this tenant's, 409 already finished."""
        if not self.api.services.job_ids.belongs_to(job_id, self.tenant):
            raise JobNotFound(job_id)
        jobs = self.api.services.jobs
        outcome, status = await self.run_blocking(
            jobs.request_cancel, job_id, tenant=self.tenant, issued=True
        )
        if outcome is CancelOutcome.UNKNOWN:
            raise JobNotFound(job_id)
        if outcome is CancelOutcome.FINISHED:
            raise ApiError(
                409, "job_finished", f"job {job_id} has already finished ({status}); nothing changed"
            )
        requested = outcome is CancelOutcome.REQUESTED
        self.write_json(
            {"id": job_id, "status": status, "cancel_requested": requested}, 202 if requested else 200
        )


class HealthHandler(BaseHandler):
    """``GET /healthz``: the process is alive; checks no dependency."""

    def get(self) -> None:
        """Always 200."""
        self.write_json({"status": "ok"})


class ReadyHandler(BaseHandler):
    """``GET /readyz``: the queue and the job store answer."""

    async def get(self) -> None:
        """200 when both answer; 503 naming the one that does not."""
        services = self.api.services
        queue, jobs = await asyncio.gather(self._check(services.queue.ping), self._check(services.jobs.ping))
        checks = {"queue": queue, "jobs": jobs}
        failed = [name for name, check in checks.items() if not check["ok"]]
        if not failed:
            self.write_json({"status": "ready", "checks": checks})
            return
        error = ApiError(503, "not_ready", f"unreachable: {', '.join(failed)}").body()
        self.write_json({"status": "not_ready", "checks": checks, **error}, 503)

    async def _check(self, ping: Any) -> dict[str, Any]:
        try:
            await asyncio.wait_for(self.run_blocking(ping), timeout=self.api.ping_timeout)
        except TimeoutError:
            return {"ok": False, "error": f"no answer within {self.api.ping_timeout:g}s"}
        except Exception as exc:
            return {"ok": False, "error": f"unreachable ({type(exc).__name__})"}
        return {"ok": True}


class OpenApiHandler(BaseHandler):
    """``GET /openapi.json``: the OpenAPI 3.1 document."""

    def get(self) -> None:
        """The document, generated from the registered tasks."""
        self.write_json(self.api.openapi())


class NotFoundHandler(BaseHandler):
    """Every unknown route: 404 in the usual error shape."""

    def prepare(self) -> None:
        """Refuse before any method dispatch."""
        raise ApiError(404, "not_found", f"no route {self.request.path}")
