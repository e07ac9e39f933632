"""``GET /metrics``: the API process's Prometheus metrics, and what it measures (requests, accepted jobs).

The endpoint is open unless ``TORNADO_METRICS_TOKEN`` is set; then it needs
``Authorization: Bearer <token>`` (401 otherwise). Its text is rendered in the API's executor,
because the gauges read at scrape time (queues, the job store's counts) may query a backend.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from tornado.web import RequestHandler

from tornado_core.observability.metrics import ApiMetrics
from tornado_core.observability.metrics_server import bearer_matches
from tornado_core.web.base import BaseHandler
from tornado_core.web.context import ApiContext
from tornado_core.web.enqueue import Enqueuer
from tornado_core.web.errors import unauthorized
from tornado_core.web.extensions import ApiExtension
from tornado_core.web.openapi import error_responses
from tornado_core.web.requests import JobRequest


class MetricsHandler(BaseHandler):
    """``GET /metrics``: the Prometheus text exposition of this API process."""

    async def get(self) -> None:
        """The metrics; 401 without the bearer token when ``TORNADO_METRICS_TOKEN`` is set."""
        token = self.api.services.settings.metrics_token
        if not bearer_matches(self.request.headers.get("Authorization"), token):
            raise unauthorized("/metrics needs the metrics bearer token (TORNADO_METRICS_TOKEN)")
        body = await self.run_blocking(generate_latest, self.api.metrics.registry)
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(body)


def metrics_endpoint(api: ApiContext) -> ApiExtension:
    """``GET /metrics`` with its OpenAPI path, served like the core's other extensions."""
    text = {"text/plain": {"schema": {"type": "string"}}}
    operation = {
        "summary": "Prometheus metrics of this API process (docs/metrics.md)",
        "description": "Open unless TORNADO_METRICS_TOKEN is set; then a bearer token is required.",
        "security": [],
        "responses": {"200": {"description": "The text exposition format.", "content": text}}
        | error_responses("401"),
    }
    return ApiExtension(
        routes=[(r"/metrics", MetricsHandler, {"api": api})], openapi_paths={"/metrics": {"get": operation}}
    )


def record_request(metrics: ApiMetrics, handler: RequestHandler) -> None:
    """Count an answered request under its handler's name (never the raw URI: bounded labels)."""
    request = handler.request
    metrics.request(
        type(handler).__name__, request.method or "", handler.get_status(), request.request_time()
    )


class MeteredEnqueuer(Enqueuer):
    """The enqueue path, counting each job it accepts (``tornado_jobs_submitted_total``).

    A duplicate of a unique job (answered with the job holding its key) is not counted; a repeated
    idempotency key is, as it queues a message again.

    Args:
        metrics: The API process's metrics.
        **kwargs: Those of :class:`~tornado_core.web.enqueue.Enqueuer`.
    """

    def __init__(self, *, metrics: ApiMetrics, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._metrics = metrics

    async def submit(
        self, tenant: str, request: JobRequest, *, body_size: int, internal_ok: bool = False
    ) -> dict[str, str]:
        """Queue one job (see :meth:`Enqueuer.submit`) and count it."""
        receipt = await super().submit(tenant, request, body_size=body_size, internal_ok=internal_ok)
        self._count(tenant, receipt)
        return receipt

    async def submit_batch(self, tenant: str, items: list[Any], *, body_size: int) -> list[dict[str, Any]]:
        """Queue every valid item (see :meth:`Enqueuer.submit_batch`) and count those accepted."""
        results = await super().submit_batch(tenant, items, body_size=body_size)
        for result in results:
            self._count(tenant, result)
        return results

    def _count(self, tenant: str, receipt: dict[str, Any]) -> None:
        if "id" in receipt and not receipt.get("existing"):
            self._metrics.submitted(receipt["task"], receipt["version"], tenant)
