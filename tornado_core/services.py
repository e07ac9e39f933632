"""The bundle of ports a Tornado process runs on, built by the composition root."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tornado_core.job_ids import JobIds
from tornado_core.ports.database import DatabasePort
from tornado_core.ports.jobs import JobStorePort
from tornado_core.ports.limits import ConcurrencyLimiterPort, RateLimiterPort
from tornado_core.ports.objects import ObjectStorePort
from tornado_core.ports.queue import QueuePort
from tornado_core.ports.queue_and_jobs import QueueAndJobsPort
from tornado_core.ports.schedules import SchedulesPort
from tornado_core.ports.tenants import TenantStorePort
from tornado_core.ports.workflows import WorkflowStorePort
from tornado_core.registry import TaskRegistry
from tornado_core.settings import Settings

if TYPE_CHECKING:
    from tornado_core.observability.tracing import Tracing


@dataclass(frozen=True, kw_only=True)
class Services:
    """Everything the API, workers and CLI use; no globals, passed explicitly.

    Attributes:
        settings: The loaded settings.
        registry: Known tasks.
        queue: The job queue (SQS or PostgreSQL).
        objects: The object store (S3).
        jobs: The job store (PostgreSQL).
        limiter: Global per-task concurrency slots.
        tenants: Tenants and token hashes.
        rds: The ERP database handed to handlers.
        redshift: The warehouse handed to handlers, if configured.
        job_ids: Issues and recognises job ids.
        queue_and_jobs: Writes the queue and the job store in one transaction, where both live
            in one database (PostgreSQL); ``None`` elsewhere, where each is written on its own.
        schedules: Jobs due later than the queue can hold them, and periodic schedules (in the
            job store's database); ``None`` where nothing keeps them.
        workflows: Workflows (DAGs of steps, each a job), in the job store's database; ``None``
            where nothing keeps them.
        rates: Token buckets of tasks' per-key rate limits; ``None``: such limits are not enforced.
        tracing: The process's traces, exported by OTLP (docs/observability.md); ``None``: tracing is
            off (no OTLP endpoint configured), and the API and workers make no span.
    """

    settings: Settings
    registry: TaskRegistry
    queue: QueuePort
    objects: ObjectStorePort
    jobs: JobStorePort
    limiter: ConcurrencyLimiterPort
    tenants: TenantStorePort
    rds: DatabasePort
    redshift: DatabasePort | None
    job_ids: JobIds
    queue_and_jobs: QueueAndJobsPort | None = None
    schedules: SchedulesPort | None = None
    rates: RateLimiterPort | None = None
    workflows: WorkflowStorePort | None = None
    tracing: Tracing | None = None
