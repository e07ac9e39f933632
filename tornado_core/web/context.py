"""The state the API's request handlers share, built once by :func:`tornado_core.web.make_app`."""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from tornado_core.observability.metrics import ApiMetrics
from tornado_core.producer.batching import SendBatcher
from tornado_core.producer.recording import QueuedRecorder
from tornado_core.services import Services
from tornado_core.web.auth import TokenCache
from tornado_core.web.enqueue import Enqueuer
from tornado_core.web.openapi import openapi_document
from tornado_core.web.quotas import TenantQuotas
from tornado_core.web.shared_timeouts import SharedTimeouts


@dataclass(kw_only=True)
class ApiContext:
    """Everything a handler needs; no globals.

    Attributes:
        services: The process's services.
        tokens: Bearer-token cache.
        enqueuer: The enqueue path.
        batcher: Micro-batched queue sends.
        recorder: Write-behind of accepted jobs.
        executor: Runs every blocking port call.
        max_body_bytes: Largest request body accepted.
        request_deadline: Seconds a request may wait on its backends before 503.
        body_timeout: Seconds a client may take to send a body.
        quotas: Per-tenant request quotas of this process.
        ping_timeout: Seconds a readiness check may take.
        in_flight: Requests being handled now.
        openapi_extra: Paths and schemas of endpoints beyond ``/v1/jobs``.
        timeouts: The request deadlines' shared timers.
        metrics: This process's Prometheus metrics (``GET /metrics``); a plugin may add a gauge
            with :meth:`~tornado_core.observability.metrics.ApiMetrics.add_gauge`.
    """

    services: Services
    tokens: TokenCache
    enqueuer: Enqueuer
    batcher: SendBatcher
    recorder: QueuedRecorder
    executor: Executor
    max_body_bytes: int
    request_deadline: float = 5.0
    body_timeout: float = 30.0
    quotas: TenantQuotas = field(default_factory=TenantQuotas)
    ping_timeout: float = 5.0
    in_flight: int = 0
    openapi_extra: tuple[dict[str, Any], dict[str, Any]] = field(default_factory=lambda: ({}, {}))
    timeouts: SharedTimeouts = field(default_factory=SharedTimeouts)
    metrics: ApiMetrics = field(default_factory=ApiMetrics)
    _openapi: dict[str, Any] | None = field(default=None, repr=False)

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI document (built on first use)."""
        if self._openapi is None:
            paths, schemas = self.openapi_extra
            self._openapi = openapi_document(self.services.registry, extra_paths=paths, extra_schemas=schemas)
        return self._openapi
