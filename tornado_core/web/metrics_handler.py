"""``GET /metrics``: the API process's Prometheus metrics.

The endpoint is open unless ``TORNADO_METRICS_TOKEN`` is set; then it needs
``Authorization: Bearer <token>`` (401 otherwise). Its text is rendered in the API's executor,
because the gauges read at scrape time (queues, the job store's counts) may query a backend.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from tornado_core.observability.metrics_server import bearer_matches
from tornado_core.web.base import BaseHandler
from tornado_core.web.context import ApiContext
from tornado_core.web.errors import unauthorized
from tornado_core.web.extensions import ApiExtension
from tornado_core.web.openapi import error_responses


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
