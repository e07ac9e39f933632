"""``/v1/workflows``: chains, fan-out/fan-in and batches of jobs submitted as one unit; look, list, cancel."""

from __future__ import annotations

from tornado_core.errors import ApiError, WorkflowInvalid, WorkflowNotFound
from tornado_core.ports.workflows import WorkflowStatus
from tornado_core.producer.direct import DirectSubmitter
from tornado_core.web.base import AuthenticatedHandler, JsonBodyHandler
from tornado_core.web.context import ApiContext
from tornado_core.web.errors import field_error
from tornado_core.web.extensions import ApiExtension
from tornado_core.web.requests import parse_limit
from tornado_core.web.workflows_openapi import MAX_LIST_LIMIT, workflow_openapi
from tornado_core.workflows.advancer import WorkflowAdvancer
from tornado_core.workflows.book import WorkflowBook


def workflow_endpoints(api: ApiContext) -> ApiExtension:
    """The workflow endpoints, served beside ``/v1/jobs`` when the services keep workflows."""
    store = api.services.workflows
    if store is None:
        return ApiExtension(routes=())
    submitter = api.enqueuer.submitter
    advancer = WorkflowAdvancer(api.services, store, direct=DirectSubmitter(api.services, submitter))
    args = {"api": api, "book": WorkflowBook(api.services, store, submitter, advancer)}
    routes = [
        (r"/v1/workflows", WorkflowsHandler, args),
        (r"/v1/workflows/([^/:]+):cancel", WorkflowCancelHandler, args),
        (r"/v1/workflows/([^/:]+)", WorkflowHandler, args),
    ]
    paths, schemas = workflow_openapi()
    return ApiExtension(routes=routes, openapi_paths=paths, openapi_schemas=schemas)


def refused(exc: WorkflowInvalid | WorkflowNotFound) -> ApiError:
    """The API's answer to a refused definition (422) or an unknown workflow (404)."""
    if isinstance(exc, WorkflowNotFound):
        return ApiError(404, "workflow_not_found", f"no workflow {exc.workflow_id!r}")
    return ApiError(422, "request_invalid", str(exc), fields=exc.problems)


class WorkflowsHandler(JsonBodyHandler):
    """``POST /v1/workflows`` submits a workflow; ``GET`` lists the tenant's, newest first."""

    book: WorkflowBook

    def initialize(self, api: ApiContext, book: WorkflowBook) -> None:  # type: ignore[override]
        super().initialize(api)
        self.book = book

    async def post(self) -> None:
        """202 with the workflow (its first steps queued); 422 naming each offending field."""
        body = self.json_body()
        try:
            created = await self.run_blocking(self.book.submit, self.tenant, body)
        except WorkflowInvalid as exc:
            raise refused(exc) from None
        self.write_json(created.to_json(), 202)

    async def get(self) -> None:
        """200 with a page of workflows (``?status=``, ``?limit=``, ``?before=`` an id)."""
        status, limit = self._status(), self._limit()
        before = self.query_argument("before") or None
        found = await self.run_blocking(
            lambda: self.book.list(self.tenant, status=status, limit=limit, before=before)
        )
        self.write_json({"workflows": [w.to_json() for w in found]})

    def _status(self) -> WorkflowStatus | None:
        text = self.query_argument("status")
        if text is None:
            return None
        if text not in {s.value for s in WorkflowStatus}:
            raise field_error(
                400,
                "parameter_invalid",
                "status",
                "must be one of " + ", ".join(s.value for s in WorkflowStatus),
            )
        return WorkflowStatus(text)

    def _limit(self) -> int:
        return parse_limit(self.query_argument("limit"), default=50, maximum=MAX_LIST_LIMIT)


class WorkflowHandler(AuthenticatedHandler):
    """``GET /v1/workflows/{id}``: status, progress, failure and every step."""

    book: WorkflowBook

    def initialize(self, api: ApiContext, book: WorkflowBook) -> None:  # type: ignore[override]
        super().initialize(api)
        self.book = book

    async def get(self, workflow_id: str) -> None:
        """200 with the workflow; 404 if the tenant has none of that id."""
        try:
            found = await self.run_blocking(self.book.get, self.tenant, workflow_id)
        except WorkflowNotFound as exc:
            raise refused(exc) from None
        self.write_json(found.to_json())


class WorkflowCancelHandler(AuthenticatedHandler):
    """``POST /v1/workflows/{id}:cancel`` (no body)."""

    book: WorkflowBook

    def initialize(self, api: ApiContext, book: WorkflowBook) -> None:  # type: ignore[override]
        super().initialize(api)
        self.book = book

    async def post(self, workflow_id: str) -> None:
        """200 with the workflow, ``cancelled`` unless it had finished; 404 if unknown."""
        try:
            found = await self.run_blocking(self.book.cancel, self.tenant, workflow_id)
        except WorkflowNotFound as exc:
            raise refused(exc) from None
        self.write_json(found.to_json())
