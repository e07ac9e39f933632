"""Building the tornado application: routes (the core's and the plugins'), shared state, access log."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import tornado.web
from tornado.httputil import HTTPConnection, HTTPMessageDelegate

from tornado_core.observability.metrics import ApiMetrics
from tornado_core.plugins import API_GROUP, Plugin, discover
from tornado_core.producer.batching import SendBatcher
from tornado_core.producer.recording import QueuedRecorder
from tornado_core.producer.submission import Submitter, VersionResolver
from tornado_core.services import Services
from tornado_core.versions import VersionCatalog
from tornado_core.web.access_log import record_answer
from tornado_core.web.auth import TokenCache
from tornado_core.web.context import ApiContext
from tornado_core.web.enqueue import Enqueuer
from tornado_core.web.extensions import Route, load_extensions, merged_openapi
from tornado_core.web.fast_lane import FastLane, LaneOrRoutes
from tornado_core.web.handlers import (
    BatchHandler,
    CancelHandler,
    HealthHandler,
    JobHandler,
    JobsHandler,
    NotFoundHandler,
    OpenApiHandler,
    ReadyHandler,
)
from tornado_core.web.metrics_handler import metrics_endpoint
from tornado_core.web.quotas import TenantQuotas
from tornado_core.web.schedules_api import schedule_endpoints
from tornado_core.web.webhooks_api import webhook_endpoints
from tornado_core.web.workflows_api import workflow_endpoints

if TYPE_CHECKING:
    from tornado_core.web.console.context import ConsoleParts

#: Threads for blocking port calls when the caller does not pass an executor.
DEFAULT_WORKERS = 32


class ApiApplication(tornado.web.Application):
    """The API's tornado application, owning its shared state.

    Args:
        api: The shared state handed to every handler.
        owns_executor: Shut the executor down in :meth:`aclose`.
        plugins: ``tornado.api`` plugins whose endpoints are served beside the core's.
        console: The operations console's parts, served under ``/console`` (``None``: no console).
    """

    def __init__(
        self,
        api: ApiContext,
        *,
        owns_executor: bool,
        plugins: Sequence[Plugin] = (),
        console: ConsoleParts | None = None,
    ) -> None:
        # The core's own extensions, served like a plugin's.
        own = [
            schedule_endpoints(api),
            webhook_endpoints(api),
            workflow_endpoints(api),
            metrics_endpoint(api),
        ]
        routes = [*core_routes(api), *(route for extension in own for route in extension.routes)]
        if console is not None:  # its pages are imported only by a process that serves them
            from tornado_core.web.console.routes import console_routes

            routes += console_routes(console)
        extensions = load_extensions(api, plugins, taken={pattern for pattern, _, _ in routes})
        api.openapi_extra = merged_openapi([*own, *extensions])
        super().__init__(
            [*routes, *(route for extension in extensions for route in extension.routes)],
            default_handler_class=NotFoundHandler,
            default_handler_args={"api": api},
            log_function=_log_request,
            serve_traceback=False,
        )
        self.api = api
        self.console = console
        self._owns_executor = owns_executor
        #: Answers the ordinary `POST /v1/jobs` below the routes (see :mod:`tornado_core.web.fast_lane`).
        self.lane = FastLane(api)
        self._routes = super().start_request

    def start_request(self, server_conn: object, request_conn: HTTPConnection) -> HTTPMessageDelegate:
        """A request's delegate: the fast lane's for an ordinary ``POST /v1/jobs``, else the routes'."""
        return LaneOrRoutes(self.lane, self._routes, server_conn, request_conn)

    def http_server_options(self) -> dict[str, Any]:
        """Keyword arguments for ``tornado.httpserver.HTTPServer`` serving this app."""
        return {
            "max_body_size": self.api.max_body_bytes,
            "idle_connection_timeout": 75.0,
            "body_timeout": self.api.body_timeout,
        }

    async def aclose(self) -> None:
        """Finish pending sends, flush the write-behind buffer, release the executor."""
        await self.api.batcher.wait_idle()
        await self.api.recorder.close()
        self.api.tokens.close()
        if self.console is not None:
            self.console.close()
        if self._owns_executor:
            self.api.executor.shutdown(wait=False)


def core_routes(api: ApiContext) -> list[Route]:
    """The core's own routes: jobs, health, readiness and the OpenAPI document."""
    args = {"api": api}
    return [
        (r"/v1/jobs", JobsHandler, args),
        (r"/v1/jobs:batch", BatchHandler, args),
        (r"/v1/jobs/([^/:]+):cancel", CancelHandler, args),
        (r"/v1/jobs/([^/]+)", JobHandler, args),
        (r"/healthz", HealthHandler, args),
        (r"/readyz", ReadyHandler, args),
        (r"/openapi.json", OpenApiHandler, args),
    ]


def make_app(
    services: Services,
    *,
    executor: Executor | None = None,
    resolve_version: VersionResolver | None = None,
    catalog: VersionCatalog | None = None,
    plugins: Sequence[Plugin] | None = None,
    quota_share: float = 1.0,
    console: ConsoleParts | None = None,
) -> ApiApplication:
    """Build the HTTP API.

    Touches no backend: tokens are loaded on the first authenticated request.

    Args:
        services: The process's services.
        executor: Runs blocking port calls; a private thread pool by default
            (then :meth:`ApiApplication.aclose` shuts it down).
        resolve_version: Routing ``(task, tenant, job_id) -> version``; defaults
            to the newest registered version.
        catalog: Versions registered by releases; jobs of those this process has
            no code for are validated against their stored JSON Schema.
        plugins: The ``tornado.api`` plugins to serve; by default every installed one.
        quota_share: This process's share of each tenant's quota (``1 / processes``).
        console: The operations console's parts (``bootstrap.console.build_console``), served under
            ``/console``; ``None`` serves no console.

    Returns:
        The application; serve it with ``HTTPServer(app, **app.http_server_options())``.
    """
    owns_executor = executor is None
    pool = executor or ThreadPoolExecutor(DEFAULT_WORKERS, thread_name_prefix="tornado-api")
    settings = services.settings
    submitter = Submitter.for_services(services, resolve_version=resolve_version, catalog=catalog)
    recorder = QueuedRecorder(services.jobs, pool)
    batcher = SendBatcher(services.queue, pool, recorder, queue_and_jobs=services.queue_and_jobs)
    # /metrics: the queues as the console's figures see them (none without a console), the store's counts.
    queues = console.figures.queues if console is not None else None
    metrics = ApiMetrics(queues=queues, job_counts=services.jobs.count_jobs)
    enqueuer = Enqueuer(
        submitter=submitter,
        batcher=batcher,
        executor=pool,
        offload_above=settings.claim_check_bytes // 4,
        jobs=services.jobs,
        schedules=services.schedules,
        tracing=services.tracing,
        metrics=metrics,
    )
    api = ApiContext(
        services=services,
        tokens=TokenCache(services.tenants, pool),
        enqueuer=enqueuer,
        batcher=batcher,
        recorder=recorder,
        executor=pool,
        max_body_bytes=settings.max_body_bytes,
        request_deadline=settings.request_deadline,
        body_timeout=settings.body_timeout,
        quotas=TenantQuotas(settings.tenant_requests_per_second, share=quota_share),
        metrics=metrics,
    )
    chosen = discover(API_GROUP) if plugins is None else plugins
    return ApiApplication(api, owns_executor=owns_executor, plugins=chosen, console=console)


def _log_request(handler: tornado.web.RequestHandler) -> None:
    """Access log and request metrics of a request answered by a handler (tornado's ``log_function``)."""
    application, request = handler.application, handler.request
    record_answer(
        application.api.metrics if isinstance(application, ApiApplication) else None,
        route=type(handler).__name__,
        method=request.method or "",
        uri=request.uri or "",
        status=handler.get_status(),
        seconds=request.request_time(),
    )
